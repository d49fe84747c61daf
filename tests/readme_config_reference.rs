//! The README's config reference is generated from the config registry; this test fails
//! when they drift apart. Regenerate with:
//! `RIPTIDE_WRITE_README=1 cargo test --test readme_config_reference`.

const BEGIN: &str = "<!-- config-reference:begin -->\n";
const END: &str = "<!-- config-reference:end -->";

#[test]
fn readme_config_reference_matches_the_registry() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
    let end = readme.find(END).expect("README has the end marker");
    let generated = riptide::config::registry::reference_markdown();
    if std::env::var_os("RIPTIDE_WRITE_README").is_some() {
        let updated = format!(
            "{}{}\n{}",
            &readme[..start],
            generated.trim_end(),
            &readme[end..]
        );
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        readme[start..end].trim_end(),
        generated.trim_end(),
        "README config reference is stale: run RIPTIDE_WRITE_README=1 cargo test --test readme_config_reference"
    );
}
