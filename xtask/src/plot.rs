//! Plots a person can open: every figure is written as PNG and SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled DejaVu Sans font for the bitmap backend (idempotent).
fn ensure_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named line of a line chart.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// A line chart written to `<stem>.png` and `<stem>.svg`.
pub struct LineChart<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// Lines.
    pub series: Vec<Series>,
}

type DynError = Box<dyn std::error::Error>;

impl LineChart<'_> {
    /// Writes the PNG and the SVG.
    pub fn write(&self, stem: &Path) -> Result<(), DynError> {
        if !crate::shard::writes_reports() {
            return Ok(()); // rank 0 of an MPI job draws; a shard leaves it to `collect`
        }
        ensure_font();
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        self.draw(BitMapBackend::new(&png, (900, 600)).into_drawing_area())?;
        self.draw(SVGBackend::new(&svg, (900, 600)).into_drawing_area())?;
        Ok(())
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), DynError>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = |a: f64, b: f64| if (b - a).abs() < 1e-12 { (a - 0.5, b + 0.5) } else { (a, b + 0.05 * (b - a)) };
        let (x0, x1) = pad(x0, x1);
        let (y0, y1) = pad(y0, y1);
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(65)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart.configure_mesh().x_desc(self.x_label).y_desc(self.y_label).label_style(("sans-serif", 15)).draw()?;
        for (i, s) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// Overlaid histograms (e.g. delays before and after training), PNG and SVG.
pub fn histograms(
    stem: &Path,
    title: &str,
    x_label: &str,
    data: &[(&str, &[f64])],
    bins: usize,
) -> Result<(), DynError> {
    let (lo, hi) = data
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let series: Vec<Series> = data
        .iter()
        .map(|(label, v)| {
            let mut counts = vec![0usize; bins];
            for &x in v.iter().filter(|x| x.is_finite()) {
                counts[(((x - lo) / width) as usize).min(bins - 1)] += 1;
            }
            let total = v.len().max(1) as f64;
            let points =
                counts.iter().enumerate().map(|(b, &c)| (lo + (b as f64 + 0.5) * width, c as f64 / total)).collect();
            Series { label: (*label).to_owned(), points }
        })
        .collect();
    LineChart { title, x_label, y_label: "fraction", series }.write(stem)
}

/// Horizontal bar charts side by side, one panel per quantity (e.g. samples/s and memory), each
/// on a log axis so that values orders of magnitude apart stay readable; PNG and SVG. `labels`
/// name the bars (bottom to top), the same in every panel; non-finite or non-positive values
/// are left out.
pub fn bar_panels(stem: &Path, title: &str, labels: &[String], panels: &[(&str, &[f64])]) -> Result<(), DynError> {
    if !crate::shard::writes_reports() {
        return Ok(()); // rank 0 of an MPI job draws; a shard leaves it to `collect`
    }
    ensure_font();
    let (w, h) = (480 * panels.len().max(1) as u32, 110 + 80 * labels.len() as u32);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw_bar_panels(BitMapBackend::new(&png, (w, h)).into_drawing_area(), title, labels, panels)?;
    draw_bar_panels(SVGBackend::new(&svg, (w, h)).into_drawing_area(), title, labels, panels)?;
    Ok(())
}

/// `v` with three significant figures or so, for a label.
fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn draw_bar_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    labels: &[String],
    panels: &[(&str, &[f64])],
) -> Result<(), DynError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let n = labels.len() as f64;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (k, ((x_desc, values), area)) in panels.iter().zip(&areas).enumerate() {
        let ok = |v: &f64| v.is_finite() && *v > 0.0;
        let (lo, hi) = values.iter().filter(|v| ok(v)).fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo > hi { (0.1, 10.0) } else { (lo / 4.0, hi * 4.0) };
        let mut chart =
            ChartBuilder::on(area).margin(15).x_label_area_size(45).build_cartesian_2d((lo..hi).log_scale(), 0.0..n)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_label_formatter(&|_| String::new())
            .x_desc(*x_desc)
            .label_style(("sans-serif", 14))
            .draw()?;
        let color = Palette99::pick(k).to_rgba();
        for (i, (&v, label)) in values.iter().zip(labels).enumerate().filter(|(_, (v, _))| ok(v)) {
            let y = i as f64;
            chart.draw_series([Rectangle::new([(lo, y + 0.1), (v, y + 0.55)], color.filled())])?;
            chart.draw_series([Text::new(format!(" {}", short(v)), (v, y + 0.45), ("sans-serif", 14))])?;
            chart.draw_series([Text::new(label.clone(), (lo * 1.1, y + 0.9), ("sans-serif", 14))])?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("xtask-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stem = dir.join("curve");
        let chart = LineChart {
            title: "test accuracy",
            x_label: "epoch",
            y_label: "accuracy",
            series: vec![Series { label: "with delays".into(), points: vec![(0.0, 0.5), (1.0, 0.8), (2.0, 0.9)] }],
        };
        chart.write(&stem).unwrap();
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.contains("with delays") && svg.contains("epoch"));
        histograms(&dir.join("hist"), "delays", "ms", &[("before", &[0.0, 1.0, 2.0]), ("after", &[3.0])], 10).unwrap();
        assert!(dir.join("hist.png").exists() && dir.join("hist.svg").exists());
        let names = ["fast".to_owned(), "slow".to_owned()];
        bar_panels(&dir.join("bars"), "speed", &names, &[("samples/s", &[80.0, 0.3]), ("MiB", &[83.0, f64::NAN])])
            .unwrap();
        let svg = std::fs::read_to_string(dir.join("bars.svg")).unwrap();
        assert!(svg.contains("slow") && svg.contains("samples/s") && dir.join("bars.png").exists());
        if std::env::var_os("KEEP_PLOTS").is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
