//! The figures from fixed data: well-formed SVG (checked by a small XML
//! reader below, no XML crate in the tree), with what each must show.

use super::*;

/// Checks that `s` is well-formed XML: one root element, every tag closed
/// in order, attributes quoted and unique, only the five named entities or
/// character references. Returns the element names in document order.
fn well_formed(s: &str) -> Result<Vec<String>, String> {
    fn name_len(s: &str) -> usize {
        s.char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic()
                    || c == '_'
                    || c == ':'
                    || (i > 0 && (c.is_ascii_digit() || c == '-' || c == '.')))
            })
            .map_or(s.len(), |(i, _)| i)
    }
    fn entities(text: &str) -> Result<(), String> {
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            let tail = &rest[at + 1..];
            let end = tail.find(';').ok_or("& without ;")?;
            let name = &tail[..end];
            let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                || name
                    .strip_prefix("#x")
                    .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
                || name
                    .strip_prefix('#')
                    .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(format!("unknown entity &{name};"));
            }
            rest = &tail[end + 1..];
        }
        Ok(())
    }
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut roots = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err("text after the root element".into());
            }
            break;
        };
        let text = &rest[..lt];
        if stack.is_empty() && !text.trim().is_empty() {
            return Err(format!("text outside the root: {text:?}"));
        }
        if text.contains('>') && stack.is_empty() {
            return Err("stray >".into());
        }
        entities(text)?;
        rest = &rest[lt..];
        let (close, skip) = if rest.starts_with("<?") {
            ("?>", true)
        } else if rest.starts_with("<!--") {
            ("-->", true)
        } else if rest.starts_with("<!") {
            (">", true)
        } else {
            ("", false)
        };
        if skip {
            let end = rest.find(close).ok_or("unclosed declaration or comment")?;
            rest = &rest[end + close.len()..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("</") {
            let n = name_len(after);
            let name = &after[..n];
            let tail = after[n..].trim_start();
            let tail = tail.strip_prefix('>').ok_or("bad end tag")?;
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            rest = tail;
            continue;
        }
        let after = &rest[1..];
        let n = name_len(after);
        if n == 0 {
            return Err("< without a name".into());
        }
        let name = after[..n].to_owned();
        if stack.is_empty() {
            roots += 1;
        }
        let mut attrs: Vec<&str> = Vec::new();
        let mut cur = &after[n..];
        let empty = loop {
            let trimmed = cur.trim_start();
            if let Some(t) = trimmed.strip_prefix("/>") {
                cur = t;
                break true;
            }
            if let Some(t) = trimmed.strip_prefix('>') {
                cur = t;
                break false;
            }
            if trimmed.len() == cur.len() {
                return Err(format!("no space before an attribute in <{name}>"));
            }
            let an = name_len(trimmed);
            if an == 0 {
                return Err(format!("bad attribute in <{name}>"));
            }
            let attr = &trimmed[..an];
            if attrs.contains(&attr) {
                return Err(format!("attribute {attr} twice in <{name}>"));
            }
            attrs.push(attr);
            let t = trimmed[an..].trim_start();
            let t = t
                .strip_prefix('=')
                .ok_or("attribute without =")?
                .trim_start();
            let quote = t.chars().next().filter(|c| *c == '"' || *c == '\'');
            let quote = quote.ok_or(format!("unquoted attribute {attr}"))?;
            let body = &t[1..];
            let end = body.find(quote).ok_or("unclosed attribute value")?;
            let value = &body[..end];
            if value.contains('<') {
                return Err(format!("< in attribute {attr}"));
            }
            entities(value)?;
            cur = &body[end + 1..];
        };
        seen.push(name.clone());
        if !empty {
            stack.push(name);
        }
        rest = cur;
    }
    if let Some(open) = stack.pop() {
        return Err(format!("<{open}> never closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(seen)
}

#[test]
fn the_xml_check_rejects_what_is_not_well_formed() {
    assert!(well_formed(r#"<svg a="1"><g><text>a &amp; b</text></g><path d="M0"/></svg>"#).is_ok());
    for bad in [
        "<svg><g></svg>",
        "<svg><g></g>",
        "<svg a=1></svg>",
        r#"<svg a="1" a="2"></svg>"#,
        "<svg><text>a & b</text></svg>",
        "<svg><text>&nbsp;</text></svg>",
        r#"<svg a="<"></svg>"#,
        "<svg></svg><svg></svg>",
        "text<svg></svg>",
    ] {
        assert!(well_formed(bad).is_err(), "accepted {bad:?}");
    }
}

/// Fixed samples: a smooth spread from `base` ms, no randomness.
fn spread(base: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| base + (i as f64 * 0.618_034).fract() * 2.0 + if i % 97 == 0 { 40.0 } else { 0.0 })
        .collect()
}

#[test]
fn a_cdf_figure_from_fixed_data_is_well_formed_svg_with_its_lines_and_legend() {
    let (a, b) = (spread(12.0, 10_000), spread(12.1, 10_000));
    let lines = [
        Line::new("unknown user", &a, 0),
        Line::new("wrong password <p & q>", &b, 1).dashed(),
    ];
    let marks = [("argon2 floor median".to_owned(), 11.5)];
    let svg = cdf_svg("Denial time per class", &lines, &marks).expect("draw");
    let elements = well_formed(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    assert_eq!(elements.first().map(String::as_str), Some("svg"));
    assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
    for text in [
        "Denial time per class",
        "unknown user",
        "wrong password &lt;p &amp; q&gt;",
        "argon2 floor median",
        "latency (ms)",
    ] {
        assert!(svg.contains(text), "{text:?} missing");
    }
    // The solid line is one polyline; the dashed one many short ones.
    let polylines = elements.iter().filter(|e| *e == "polyline").count();
    assert!(polylines >= 3, "{polylines} polylines");
    // Drawn through quantiles, not every one of 20 000 samples.
    assert!(svg.len() < 150_000, "{} bytes", svg.len());
}

#[test]
fn a_throughput_figure_from_fixed_data_is_well_formed_svg_with_bars_and_limit() {
    let rates = [(1, 78.6), (2, 155.6), (8, 167.0), (64, 164.1)];
    let svg = throughput_svg("Saturated throughput", &rates, 175.8).expect("draw");
    let elements = well_formed(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    assert_eq!(elements.first().map(String::as_str), Some("svg"));
    for text in ["K = 1", "K = 64", "limit: cores / argon2 median = 175.8/s"] {
        assert!(svg.contains(text), "{text:?} missing");
    }
    // Four bars, the legend's sample bar, the background and the legend box.
    let rects = elements.iter().filter(|e| *e == "rect").count();
    assert!(rects >= 5, "{rects} rects");
}

#[test]
fn the_ecdf_is_sorted_ends_at_one_and_keeps_at_most_its_points() {
    assert_eq!(
        ecdf(&[3.0, 1.0, 2.0], 400),
        vec![(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]
    );
    let big = spread(5.0, 10_000);
    let points = ecdf(&big, 400);
    assert_eq!(points.len(), 400);
    assert!(
        points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1)
    );
    let min = big.iter().copied().fold(f64::INFINITY, f64::min);
    let max = big.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(points[0].0, min);
    assert_eq!(points[399], (max, 1.0));
    assert!(ecdf(&[], 400).is_empty());
}

#[test]
fn figures_are_written_only_when_asked_and_a_failure_is_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("bench");
    let none = Figures::new(None).save("x.svg", || panic!("drawn without --svg"));
    assert_eq!(none, None);
    let figures = Figures::new(Some(out.clone()));
    let line = figures.save("a.svg", || Ok("<svg/>".into()));
    assert_eq!(
        line,
        Some(format!("Figure: `{}`\n", out.join("a.svg").display()))
    );
    assert_eq!(
        std::fs::read_to_string(out.join("a.svg")).ok().as_deref(),
        Some("<svg/>")
    );
    assert!(!figures.failed());
    assert_eq!(figures.save("b.svg", || Err("no data".into())), None);
    assert!(figures.failed());
    assert!(!out.join("b.svg").exists());
}
