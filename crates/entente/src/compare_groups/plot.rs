//! The PNG: four log-log panels against group size. Top: bytes delivered and
//! sender CPU per message. Bottom: bytes delivered and CPU of all members per
//! membership change (add solid, remove dashed).
//!
//! Text needs a TrueType font, loaded at run time (plotters' `ab_glyph` backend),
//! so neither fontconfig nor a bundled font file is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::register_font;

use super::report::{bytes, duration};
use super::{Cost, Mechanism, Results, Row};

/// Where the usual TrueType fonts live: Debian's fonts-dejavu-core first.
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// Proof that a font is registered for the plot's text.
#[derive(Clone, Copy)]
pub(crate) struct FontReady(());

/// Loads `path`, or the first font of [`FONT_CANDIDATES`] that exists, and
/// registers it for the plot. Only the first call in a process registers one.
pub(crate) fn load_font(path: Option<&Path>) -> Result<FontReady> {
    static REGISTERED: OnceLock<PathBuf> = OnceLock::new();
    if REGISTERED.get().is_some() {
        return Ok(FontReady(()));
    }
    let path: PathBuf = match path {
        Some(p) => p.to_owned(),
        None => match FONT_CANDIDATES.iter().map(Path::new).find(|p| p.is_file()) {
            Some(p) => p.to_owned(),
            None => bail!(
                "no font for the plot's text: none of {} exists. Install one \
                 (Debian/Ubuntu: `apt-get install fonts-dejavu-core`) or pass \
                 --font FILE.ttf",
                FONT_CANDIDATES.join(", ")
            ),
        },
    };
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    // plotters keeps fonts for the life of the process; so does this one, once.
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    register_font(FAMILY, FontStyle::Normal, data)
        .map_err(|_| anyhow!("{} is not a TrueType/OpenType font", path.display()))?;
    let _ = REGISTERED.set(path);
    Ok(FontReady(()))
}

/// One line of a panel.
struct Series {
    label: String,
    color: RGBColor,
    dashed: bool,
    /// (group size, value); values that are not positive are left out (log scale).
    points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Micros,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Bytes => bytes(v.round() as u64),
            Unit::Micros => duration(v),
        }
    }
}

pub(crate) fn draw(r: &Results, path: &Path, _font: FontReady) -> Result<()> {
    let root = BitMapBackend::new(path, (1600, 1200)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root
        .titled(
            "Group mechanisms: cost against group size (log-log)",
            (FAMILY, 30).into_font(),
        )
        .map_err(plot_error)?;
    let panels = root.split_evenly((2, 2));
    let [msg_bytes, msg_cpu, change_bytes, change_cpu] = panels.as_slice() else {
        bail!("bug: expected four panels");
    };
    let messages = |f: fn(&Cost) -> f64| -> Vec<Series> {
        mechanisms(&r.rows)
            .into_iter()
            .filter(|m| *m != Mechanism::MlsFresh)
            .map(|m| Series {
                label: m.label().to_owned(),
                color: color(m),
                dashed: false,
                points: points(&r.rows, m, |row| row.measured.message.as_ref().map(f)),
            })
            .collect()
    };
    let changes = |f: fn(&Cost) -> f64| -> Vec<Series> {
        let mut v = Vec::new();
        for m in mechanisms(&r.rows) {
            v.push(Series {
                label: format!("{m}: add"),
                color: color(m),
                dashed: false,
                points: points(&r.rows, m, |row| Some(f(&row.measured.add))),
            });
            v.push(Series {
                label: format!("{m}: remove"),
                color: color(m),
                dashed: true,
                points: points(&r.rows, m, |row| Some(f(&row.measured.remove))),
            });
        }
        v
    };
    panel(
        msg_bytes,
        "Bytes delivered per message (all recipients)",
        Unit::Bytes,
        &messages(|c| c.delivered as f64),
    )?;
    panel(
        msg_cpu,
        "Sender CPU per message",
        Unit::Micros,
        &messages(|c| c.sender_us),
    )?;
    panel(
        change_bytes,
        "Bytes delivered per membership change",
        Unit::Bytes,
        &changes(|c| c.delivered as f64),
    )?;
    panel(
        change_cpu,
        "CPU of all members per membership change",
        Unit::Micros,
        &changes(Cost::total_us),
    )?;
    root.present()
        .map_err(plot_error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

fn mechanisms(rows: &[Row]) -> Vec<Mechanism> {
    let mut v: Vec<Mechanism> = rows.iter().map(|r| r.mechanism).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn points(rows: &[Row], m: Mechanism, f: impl Fn(&Row) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.mechanism == m)
        .filter_map(|r| f(r).map(|y| (r.size as f64, y)))
        .filter(|(_, y)| *y > 0.0 && y.is_finite())
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

fn color(m: Mechanism) -> RGBColor {
    match m {
        Mechanism::Pairwise => RGBColor(214, 39, 40),
        Mechanism::SenderKeys => RGBColor(31, 119, 180),
        Mechanism::Mls => RGBColor(44, 160, 44),
        Mechanism::MlsFresh => RGBColor(148, 103, 189),
    }
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    unit: Unit,
    series: &[Series],
) -> Result<()> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        // Nothing to draw (no positive value): an empty frame with its title.
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    if x1 <= x0 {
        x1 = x0 * 2.0;
    }
    // Room around the points, so the outer ones do not sit on the frame.
    let (x0, x1) = (x0 / 1.25, x1 * 1.25);
    let (y0, y1) = (y0 / 2.0, y1 * 2.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22).into_font())
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("group size (members)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| unit.format(*y))
        .label_style((FAMILY, 14).into_font())
        .axis_desc_style((FAMILY, 16).into_font())
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(plot_error)?;
    for s in series {
        if s.points.is_empty() {
            // Zero everywhere (a pairwise removal): named in the legend, not drawn.
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(plot_error)?
                .label(format!("{}: zero, not drawn", s.label))
                .legend(|(x, y)| Circle::new((x + 10, y), 0, WHITE.filled()));
            continue;
        }
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        let legend_color = s.color;
        let dashed = s.dashed;
        let drawn = if s.dashed {
            chart
                .draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 6, style))
                .map_err(plot_error)?
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(plot_error)?
        };
        drawn.label(s.label.as_str()).legend(move |(x, y)| {
            let style = ShapeStyle::from(&legend_color).stroke_width(2);
            // Offsets from (x, y), where the legend entry starts.
            let first = PathElement::new(vec![(0, 0), (8, 0)], style);
            let second = if dashed {
                PathElement::new(vec![(13, 0), (20, 0)], style)
            } else {
                PathElement::new(vec![(8, 0), (20, 0)], style)
            };
            EmptyElement::at((x, y)) + first + second
        });
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|p| Circle::new(*p, 3, ShapeStyle::from(&s.color).filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FAMILY, 14).into_font())
        .draw()
        .map_err(plot_error)?;
    Ok(())
}
