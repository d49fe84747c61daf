//! Latency plots as SVG (plotters, SVG backend only: no font or system libraries needed).
//! Percentile plots use the HdrHistogram convention: x = log10(1 / (1 - p)), so 90%, 99%,
//! 99.9%... are evenly spaced and the tail gets the room it deserves.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::stats::Percentiles;

const WIDTH: u32 = 900;
const HEIGHT: u32 = 500;
const X_MAX: f64 = 5.0; // 99.999%
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Position of percentile `p` (0..100) on the x axis.
pub fn x_of(p: f64) -> f64 {
    let q = (p / 100.0).clamp(0.0, 1.0 - 1e-12);
    (1.0 / (1.0 - q)).log10().min(X_MAX)
}

fn x_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        3 => "99.9%".into(),
        4 => "99.99%".into(),
        5 => "99.999%".into(),
        _ => String::new(),
    }
}

/// One line per (label, percentiles); y is latency in ms on a log scale.
pub fn percentile_svg(path: &Path, title: &str, series: &[(String, &Percentiles)]) -> Result<()> {
    let y_max = series
        .iter()
        .map(|(_, p)| p.max_us as f64 / 1000.0)
        .fold(0.01, f64::max)
        * 1.5;
    let y_min = series
        .iter()
        .flat_map(|(_, p)| p.curve.first().map(|c| c.1 as f64 / 1000.0))
        .fold(f64::INFINITY, f64::min)
        .min(y_max / 10.0)
        .max(0.001)
        / 1.5;
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..X_MAX, (y_min..y_max).log_scale())
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(242, 242, 242))
        .x_labels(6)
        .x_label_formatter(&|x| x_label(*x))
        .y_desc("latency (ms)")
        .x_desc("percentile")
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (i, (label, p)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points: Vec<(f64, f64)> = p
            .curve
            .iter()
            .map(|&(q, us)| (x_of(q), (us as f64 / 1000.0).max(y_min)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

/// p99 over time, one line per label: (seconds, ms) points.
pub fn timeline_svg(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let t_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(0.01, f64::max)
        * 1.2;
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(|e| anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(242, 242, 242))
        .x_desc("seconds")
        .y_desc("p99 latency per second (ms)")
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e:?}"))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e:?}"))?;
    root.present().map_err(|e| anyhow!("{e:?}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_axis_spacing_and_svg_output() {
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(x_of(100.0), X_MAX);
        let p = Percentiles {
            max_us: 5000,
            curve: vec![(0.0, 100), (90.0, 500), (99.0, 2000), (99.9, 5000)],
            ..Default::default()
        };
        let dir = std::env::temp_dir().join(format!("perf-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("p.svg");
        percentile_svg(&f, "test", &[("a".into(), &p)]).unwrap();
        let svg = std::fs::read_to_string(&f).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("99.9%") && svg.contains("<polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        let t = dir.join("t.svg");
        timeline_svg(&t, "tl", &[("a".into(), vec![(0.0, 1.0), (1.0, 2.0)])]).unwrap();
        assert!(std::fs::read_to_string(&t).unwrap().contains("<polyline"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
