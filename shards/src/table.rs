//! TODO(owner): placeholder so the crate builds while this module is written.
