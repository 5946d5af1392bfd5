//! Half-open time intervals [start, end) in epoch milliseconds, as sorted disjoint lists.

pub type Span = (i64, i64);

/// Total length of a sorted, disjoint list.
pub fn total(spans: &[Span]) -> i64 {
    spans.iter().map(|(a, b)| b - a).sum()
}

/// Clip to [from, to), dropping empty spans.
pub fn clip(spans: &[Span], from: i64, to: i64) -> Vec<Span> {
    spans
        .iter()
        .map(|&(a, b)| (a.max(from), b.min(to)))
        .filter(|(a, b)| a < b)
        .collect()
}

/// Intersection of two sorted, disjoint lists.
pub fn intersect(x: &[Span], y: &[Span]) -> Vec<Span> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < x.len() && j < y.len() {
        let a = x[i].0.max(y[j].0);
        let b = x[i].1.min(y[j].1);
        if a < b {
            out.push((a, b));
        }
        if x[i].1 < y[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Length of the intersection, without allocating.
pub fn overlap(x: &[Span], y: &[Span]) -> i64 {
    let (mut i, mut j) = (0, 0);
    let mut sum = 0;
    while i < x.len() && j < y.len() {
        let a = x[i].0.max(y[j].0);
        let b = x[i].1.min(y[j].1);
        if a < b {
            sum += b - a;
        }
        if x[i].1 < y[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    sum
}

/// Whether `t` lies in one of the spans.
pub fn contains(spans: &[Span], t: i64) -> bool {
    spans.iter().any(|&(a, b)| a <= t && t < b)
}

/// Spans where a step function of (time, value) changes holds `pred`, up to `end`.
/// Before the first change the value is `initial`.
pub fn spans_where<T: Copy>(
    changes: &[(i64, T)],
    initial: T,
    end: i64,
    pred: impl Fn(T) -> bool,
) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut cur = initial;
    let mut since = i64::MIN;
    for &(at, v) in changes {
        if at >= end {
            break;
        }
        if pred(cur) && since < at {
            push(&mut out, (since, at));
        }
        cur = v;
        since = at;
    }
    if pred(cur) && since < end {
        push(&mut out, (since, end));
    }
    out
}

fn push(out: &mut Vec<Span>, s: Span) {
    match out.last_mut() {
        Some(last) if last.1 >= s.0 => last.1 = last.1.max(s.1),
        _ => out.push(s),
    }
}

/// Spans where at least `need(n_counted)` of the members are "on": members give their
/// counted spans and on-spans (on ⊆ counted). Used for systems (device quorum) and zones.
pub fn quorum_spans(
    members: &[(Vec<Span>, Vec<Span>)],
    from: i64,
    to: i64,
    need: impl Fn(usize) -> usize,
) -> Vec<Span> {
    // Events: (time, d_counted, d_on).
    let mut ev: Vec<(i64, i32, i32)> = Vec::new();
    for (counted, on) in members {
        for &(a, b) in counted {
            ev.push((a, 1, 0));
            ev.push((b, -1, 0));
        }
        for &(a, b) in on {
            ev.push((a, 0, 1));
            ev.push((b, 0, -1));
        }
    }
    ev.sort_unstable();
    let (mut counted, mut on) = (0i32, 0i32);
    let mut out = Vec::new();
    let mut i = 0;
    let mut prev = from;
    let holds = |c: i32, o: i32| {
        let n = need(c.max(0) as usize);
        c > 0 && n > 0 && o as usize >= n
    };
    while i < ev.len() {
        let t = ev[i].0;
        if t > prev && holds(counted, on) {
            let (a, b) = (prev.max(from), t.min(to));
            if a < b {
                push(&mut out, (a, b));
            }
        }
        while i < ev.len() && ev[i].0 == t {
            counted += ev[i].1;
            on += ev[i].2;
            i += 1;
        }
        prev = t;
    }
    if prev < to && holds(counted, on) {
        push(&mut out, (prev.max(from), to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_ops() {
        let x = vec![(0, 10), (20, 30)];
        let y = vec![(5, 25)];
        assert_eq!(intersect(&x, &y), vec![(5, 10), (20, 25)]);
        assert_eq!(overlap(&x, &y), 10);
        assert_eq!(clip(&x, 8, 22), vec![(8, 10), (20, 22)]);
        assert_eq!(total(&x), 20);
        assert!(contains(&x, 0) && !contains(&x, 10));
    }

    #[test]
    fn step_function_spans() {
        let ch = [(10, true), (20, false), (30, true)];
        assert_eq!(spans_where(&ch, false, 40, |v| v), vec![(10, 20), (30, 40)]);
        assert_eq!(spans_where(&ch, false, 25, |v| v), vec![(10, 20)]);
        assert_eq!(spans_where(&ch, false, 40, |v| !v)[1..], [(20, 30)]);
    }

    #[test]
    fn quorum_any_and_all() {
        let a = (vec![(0, 100)], vec![(0, 50)]);
        let b = (vec![(0, 100)], vec![(25, 75)]);
        let any = quorum_spans(&[a.clone(), b.clone()], 0, 100, |_| 1);
        assert_eq!(any, vec![(0, 75)]);
        let all = quorum_spans(&[a, b], 0, 100, |n| n);
        assert_eq!(all, vec![(25, 50)]);
    }
}
