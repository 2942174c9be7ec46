//! The report page drawn from a [`Model`]: one HTML string with inline CSS and SVG, no
//! script, no font, no address to fetch. The sequence diagram has a row per item, time
//! running down: this end's lane on the left with its calls beside it and its TCP states on
//! it, the peer's lane on the right with its states, each segment an arrow between them
//! labelled with its flags and length. Below, one plot each of cwnd, rtt, bytes in flight and
//! throughput over time. Elements carry stable classes (`segment`, `call`, `state`, `plot
//! cwnd`, ...) so tests can count them. Layout only: no I/O here.

use std::fmt::Write as _;

use super::model::{Item, Lane, Model, Point, Timed};

const WIDTH: u32 = 1100;
const ROW: u32 = 24;
const TOP: u32 = 70;
const LOCAL_X: u32 = 430;
const PEER_X: u32 = 860;
const TIME_X: u32 = 8;
/// The longest call text drawn; the rest is cut with an ellipsis (the trace has it whole).
const CALL_CHARS: usize = 52;

const STYLE: &str = "
body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
h2 { font-size: 16px; margin: 18px 0 6px 0; }
p.summary, p.note { margin: 4px 0; font-size: 13px; color: #444; }
svg { display: block; }
svg text { font-family: monospace; font-size: 11px; fill: #222; }
.lane { stroke: #888; stroke-width: 2; }
.lane-head rect { fill: #eef2f7; stroke: #5a6b80; }
.lane-head text { font-size: 12px; font-weight: bold; }
.time { fill: #777; }
.segment line { stroke-width: 1.5; }
.segment.out line { stroke: #1f5fbf; }
.segment.in line { stroke: #b8501a; }
.segment.syn text { fill: #0a7a2f; font-weight: bold; }
.segment.fin text { fill: #7a3a9a; font-weight: bold; }
.segment.rst line { stroke: #d00; stroke-width: 2.5; }
.segment.rst text { fill: #d00; font-weight: bold; }
.call text { fill: #333; }
.kernel text { fill: #8a5a00; font-style: italic; }
.state rect { fill: #fff8d0; stroke: #b89a00; }
.state text { font-size: 10px; font-weight: bold; fill: #5a4a00; }
.gap text { fill: #a00; font-style: italic; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; max-width: 1100px; }
.plot rect.frame { fill: #fbfbfb; stroke: #aaa; }
.plot polyline { fill: none; stroke-width: 2; }
.plot.cwnd polyline { stroke: #1f5fbf; }
.plot.rtt polyline { stroke: #b8501a; }
.plot.inflight polyline { stroke: #0a7a2f; }
.plot.throughput polyline { stroke: #7a3a9a; }
.plot circle { fill: #222; }
";

/// The page for `model`, titled `title` (the trace file's name, or the session's).
pub fn render(model: &Model, title: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sockkit report: {t}</title><style>{STYLE}</style></head><body>\n\
         <h1>sockkit report: {t}</h1>\n",
        t = esc(title)
    );
    summary(&mut out, model);
    out.push_str("<h2>TCP_INFO over time</h2>\n");
    plots(&mut out, model);
    out.push_str("<h2>The connection, time running down</h2>\n");
    diagram(&mut out, model);
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, m: &Model) {
    let span = m.last_ns.saturating_sub(m.first_ns.unwrap_or(0));
    let _ = write!(
        out,
        "<p class=\"summary\">{} events over {}; {} segments",
        m.lines,
        ms(span),
        m.segments
    );
    if let Some((packets, dropped)) = m.captured {
        let _ = write!(
            out,
            " ({packets} packets captured, {dropped} dropped by the kernel)"
        );
    }
    let _ = writeln!(out, "; {} TCP_INFO samples plotted.</p>", m.samples.len());
    if m.not_understood > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} lines were not trace events and were passed over.</p>",
            m.not_understood
        );
    }
    if m.segments == 0 {
        out.push_str(
            "<p class=\"note\">No segments were captured: capturing needs CAP_NET_RAW (run as \
             root, or setcap cap_net_raw+ep on sockkit), and a Unix socket has none.</p>\n",
        );
    }
}

/// A time on the session clock relative to the first event, in ms.
fn ms(ns: u64) -> String {
    format!("{:.3}ms", ns as f64 / 1e6)
}

fn diagram(out: &mut String, m: &Model) {
    let (items, gap) = m.items();
    let rows = items.len() as u32 + u32::from(gap.is_some());
    let height = TOP + rows * ROW + 30;
    let _ = write!(
        out,
        "<svg class=\"sequence\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\n\
         <defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#444\"/></marker></defs>\n"
    );
    let local = m.local.clone().unwrap_or_else(|| "this end".to_string());
    let peer = match m.remotes.as_slice() {
        [] => "peer".to_string(),
        [one] => one.clone(),
        many => format!("{} peers", many.len()),
    };
    for (x, who, name) in [(LOCAL_X, "this end", local), (PEER_X, "peer", peer)] {
        let _ = writeln!(
            out,
            "<g class=\"lane-head\"><rect x=\"{}\" y=\"8\" width=\"220\" height=\"40\" rx=\"4\"/>\
             <text x=\"{x}\" y=\"24\" text-anchor=\"middle\">{who}</text>\
             <text x=\"{x}\" y=\"40\" text-anchor=\"middle\">{}</text></g>\n\
             <line class=\"lane\" x1=\"{x}\" y1=\"48\" x2=\"{x}\" y2=\"{}\"/>",
            x - 110,
            esc(&name),
            height - 10
        );
    }
    let start = m.first_ns.unwrap_or(0);
    let many_peers = m.remotes.len() > 1;
    let mut row = 0u32;
    for (i, timed) in items.iter().enumerate() {
        if gap == Some(i) {
            let y = TOP + row * ROW;
            let _ = writeln!(
                out,
                "<g class=\"gap\"><text x=\"{}\" y=\"{y}\" text-anchor=\"middle\">... {} \
                 segments and {} other events not drawn ...</text></g>",
                u32::midpoint(LOCAL_X, PEER_X),
                m.skipped_segments,
                m.skipped_other
            );
            row += 1;
        }
        let y = TOP + row * ROW;
        let _ = writeln!(
            out,
            "<text class=\"time\" x=\"{TIME_X}\" y=\"{}\">+{}</text>",
            y + 4,
            ms(timed.t_ns.saturating_sub(start))
        );
        draw(out, timed, y, many_peers);
        row += 1;
    }
    out.push_str("</svg>\n");
}

fn draw(out: &mut String, timed: &Timed, y: u32, many_peers: bool) {
    match &timed.item {
        Item::Segment {
            out: sent,
            flags,
            len,
            label,
            remote,
        } => {
            let (x1, x2, dir) = if *sent {
                (LOCAL_X, PEER_X, "out")
            } else {
                (PEER_X, LOCAL_X, "in")
            };
            let mut class = format!("segment {dir}");
            for (c, name) in [('S', " syn"), ('F', " fin"), ('R', " rst")] {
                if flags.contains(c) {
                    class.push_str(name);
                }
            }
            let who = if many_peers {
                format!(" ({remote})")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "<g class=\"{class}\" data-len=\"{len}\"><line x1=\"{x1}\" y1=\"{}\" x2=\"{x2}\" \
                 y2=\"{}\" marker-end=\"url(#head)\"/><text x=\"{}\" y=\"{}\" \
                 text-anchor=\"middle\">{}{}</text></g>",
                y - 4,
                y + 8,
                u32::midpoint(LOCAL_X, PEER_X),
                y - 2,
                esc(label),
                esc(&who)
            );
        }
        Item::Call { text } => note(out, "call", text, y),
        Item::Kernel { text } => note(out, "kernel", text, y),
        Item::State {
            lane,
            state,
            remote,
        } => {
            let x = match lane {
                Lane::Local => LOCAL_X,
                Lane::Peer => PEER_X,
            };
            let tag = if many_peers && *lane == Lane::Peer {
                format!(" {remote}")
            } else {
                String::new()
            };
            let w = 12 + 7 * (state.len() + tag.len()) as u32;
            let _ = writeln!(
                out,
                "<g class=\"state\"><rect x=\"{}\" y=\"{}\" width=\"{w}\" height=\"16\" \
                 rx=\"3\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{state}{}</text></g>",
                x - w / 2,
                y - 8,
                y + 4,
                esc(&tag)
            );
        }
    }
}

/// A call or a kernel note, beside this end's lane on the left.
fn note(out: &mut String, class: &str, text: &str, y: u32) {
    let shown: String = if text.chars().count() > CALL_CHARS {
        let cut: String = text.chars().take(CALL_CHARS - 1).collect();
        format!("{cut}\u{2026}")
    } else {
        text.to_string()
    };
    let _ = writeln!(
        out,
        "<g class=\"{class}\"><title>{}</title><text x=\"{}\" y=\"{}\" \
         text-anchor=\"end\">{}</text></g>",
        esc(text),
        LOCAL_X - 8,
        y + 4,
        esc(&shown)
    );
}

/// The four plots, or one sentence when there is nothing to plot.
fn plots(out: &mut String, m: &Model) {
    if m.samples.is_empty() {
        out.push_str(
            "<p class=\"note no-samples\">No TCP_INFO samples in this trace, so nothing to \
             plot: run with --tcp-info-every DURATION (or --report, which samples every \
             20ms) on a TCP connection.</p>\n",
        );
        return;
    }
    if let Some(who) = m.sampled_remote() {
        let _ = writeln!(
            out,
            "<p class=\"note\">Samples of client {}{}.</p>",
            esc(who),
            if m.other_samples > 0 {
                format!("; {} samples of other clients not plotted", m.other_samples)
            } else {
                String::new()
            }
        );
    }
    let s = &m.samples;
    // Over a window of at least THROUGHPUT_WINDOW_NS, so writes spaced wider than the
    // sampling interval draw a rate, not a comb of spikes.
    let mut from = 0;
    let throughput: Vec<(u64, f64)> = s
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, p)| {
            while from + 1 < i && p.t_ns.saturating_sub(s[from + 1].t_ns) >= THROUGHPUT_WINDOW_NS {
                from += 1;
            }
            let dt = p.t_ns.saturating_sub(s[from].t_ns) as f64 / 1e9;
            let rate = if dt > 0.0 {
                (p.moved - s[from].moved).max(0.0) / dt / 1e6
            } else {
                0.0
            };
            (p.t_ns, rate)
        })
        .collect();
    let series =
        |f: fn(&Point) -> f64| -> Vec<(u64, f64)> { s.iter().map(|p| (p.t_ns, f(p))).collect() };
    out.push_str("<div class=\"plots\">\n");
    let start = m.first_ns.unwrap_or(0);
    let end = m.last_ns.max(start.saturating_add(1));
    plot(
        out,
        "cwnd",
        "cwnd (segments)",
        &series(|p| p.cwnd),
        start,
        end,
    );
    plot(
        out,
        "rtt",
        "smoothed rtt (ms)",
        &series(|p| p.rtt_ms),
        start,
        end,
    );
    plot(
        out,
        "inflight",
        "bytes in flight",
        &series(|p| p.in_flight_bytes),
        start,
        end,
    );
    plot(
        out,
        "throughput",
        "throughput /100ms (MB/s)",
        &throughput,
        start,
        end,
    );
    out.push_str("</div>\n");
}

/// The shortest span a throughput point is measured over.
const THROUGHPUT_WINDOW_NS: u64 = 100_000_000;

const PW: f64 = 268.0;
const PH: f64 = 170.0;
const PL: f64 = 46.0;
const PR: f64 = 12.0;
const PT: f64 = 26.0;
const PB: f64 = 28.0;

fn plot(out: &mut String, class: &str, title: &str, points: &[(u64, f64)], start: u64, end: u64) {
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let span = end.saturating_sub(start).max(1) as f64;
    let x = |t: u64| PL + (t.saturating_sub(start)) as f64 / span * (PW - PL - PR);
    let y = |v: f64| PH - PB - v / top * (PH - PT - PB);
    let _ = write!(
        out,
        "<svg class=\"plot {class}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{PW}\" \
         height=\"{PH}\" viewBox=\"0 0 {PW} {PH}\"><rect class=\"frame\" x=\"{PL}\" y=\"{PT}\" \
         width=\"{}\" height=\"{}\"/><text x=\"{PL}\" y=\"16\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"{PL}\" y=\"{}\">+0ms</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        PW - PL - PR,
        PH - PT - PB,
        esc(title),
        PL - 4.0,
        PT + 8.0,
        amount(max),
        PL - 4.0,
        PH - PB,
        PH - 8.0,
        PW - PR,
        PH - 8.0,
        format_args!("+{}", ms(end.saturating_sub(start))),
    );
    let pts: Vec<String> = points
        .iter()
        .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = write!(out, "<polyline points=\"{}\"/>", pts.join(" "));
    if points.len() <= 60 {
        for &(t, v) in points {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"/>",
                x(t),
                y(v)
            );
        }
    }
    out.push_str("</svg>\n");
}

/// An axis label: 12, 3.5, 1.2k, 4.5M.
fn amount(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Text made safe inside HTML and SVG.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::model::{SMALL, small};
    use super::*;

    #[test]
    fn the_page_has_an_arrow_per_segment_both_plots_and_nothing_fetched() {
        let page = render(&small(), "t.jsonl");
        assert_eq!(page.matches("<g class=\"segment ").count(), 8);
        assert_eq!(page.matches("<g class=\"segment out").count(), 5);
        assert_eq!(page.matches("class=\"segment in syn\"").count(), 1);
        for plot in ["cwnd", "rtt", "inflight", "throughput"] {
            assert_eq!(
                page.matches(&format!("class=\"plot {plot}\"")).count(),
                1,
                "{plot}"
            );
        }
        assert!(page.contains(">TIME_WAIT<"), "{page}");
        assert!(page.contains(">connect(fd 5, 127.0.0.1:4000) = 0<"));
        for fetched in [
            "<script",
            "src=",
            "href=",
            "@import",
            "url(http",
            "@font-face",
        ] {
            assert!(!page.contains(fetched), "{fetched}");
        }
        assert!(!page.contains("no-samples"));
    }

    #[test]
    fn without_samples_the_page_says_so_instead_of_drawing_empty_axes() {
        let mut m = Model::default();
        for l in SMALL.lines().filter(|l| !l.contains("tcp_info")) {
            m.add_line(l).unwrap();
        }
        let page = render(&m, "t");
        assert!(page.contains("class=\"note no-samples\""));
        assert!(!page.contains("class=\"plot "));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
