//! MQTT topic filters (`+` one level, `#` the rest, as MQTT 3.1.1 § 4.7 has them): whether one
//! is well formed, matches a topic, or could match a topic another one matches.

/// Why `f` is not a topic filter, if it is not.
pub fn filter_problem(f: &str) -> Option<String> {
    if f.is_empty() {
        return Some("a topic filter is empty".into());
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Some(format!(
                "topic filter {f:?}: `#` must be a whole level, the last one"
            ));
        }
        if l.contains('+') && *l != "+" {
            return Some(format!("topic filter {f:?}: `+` must be a whole level"));
        }
    }
    None
}

/// Whether `filter` matches `topic`.
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(l)) if f == l => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

/// Whether some topic matches both filters.
pub fn overlap(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_with_plus_and_hash() {
        assert!(matches("acme/+/telemetry", "acme/p1/telemetry"));
        assert!(!matches("acme/+/telemetry", "acme/p1/x/telemetry"));
        assert!(!matches("acme/+/telemetry", "acme/p1"));
        assert!(matches("acme/#", "acme/p1/x"));
        assert!(matches("acme/#", "acme"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
    }

    #[test]
    fn overlaps_are_found_through_wildcards() {
        assert!(overlap("safegate/v1/#", "safegate/+/x"));
        assert!(overlap("safegate/v1/#", "#"));
        assert!(overlap("safegate/v1/#", "safegate/v1"));
        assert!(!overlap("safegate/v1/#", "acme/+/t"));
        assert!(overlap("a/+/c", "a/b/+"));
        assert!(!overlap("a/+/c", "a/b"));
    }

    #[test]
    fn malformed_filters_are_named() {
        assert!(filter_problem("a/#/b").is_some());
        assert!(filter_problem("a/b#").is_some());
        assert!(filter_problem("a/x+").is_some());
        assert!(filter_problem("").is_some());
        assert!(filter_problem("a/+/#").is_none());
    }
}
