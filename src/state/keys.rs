//! The journal's unit keys: (kind, site, id) → the integer key its rows carry. Held by the
//! writer and shared by the readers, one entry per unit ever seen (300,000 points and more),
//! so an entry is one boxed string `<kind><site>\0<id>` (about 60 bytes with its slot, where
//! a tuple of two `String`s took about 120), and a lookup builds that string in a reused
//! buffer instead of allocating two strings per row written.

use crate::core::inventory::UnitKind;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct UnitKeys {
    map: HashMap<Box<str>, i64>,
    max: Option<i64>,
}

fn kind_char(k: UnitKind) -> char {
    match k {
        UnitKind::Site => 's',
        UnitKind::Enterprise => 'e',
        UnitKind::Zone => 'z',
        UnitKind::System => 'y',
        UnitKind::Device => 'd',
    }
}

fn kind_of(c: char) -> Option<UnitKind> {
    Some(match c {
        's' => UnitKind::Site,
        'e' => UnitKind::Enterprise,
        'z' => UnitKind::Zone,
        'y' => UnitKind::System,
        'd' => UnitKind::Device,
        _ => return None,
    })
}

fn encode(out: &mut String, kind: UnitKind, site: &str, id: &str) {
    out.clear();
    out.push(kind_char(kind));
    out.push_str(site);
    out.push('\0');
    out.push_str(id);
}

thread_local! {
    static BUF: RefCell<String> = const { RefCell::new(String::new()) };
}

impl UnitKeys {
    pub fn get(&self, kind: UnitKind, site: &str, id: &str) -> Option<i64> {
        BUF.with(|b| {
            let mut b = b.borrow_mut();
            encode(&mut b, kind, site, id);
            self.map.get(b.as_str()).copied()
        })
    }

    pub fn insert(&mut self, kind: UnitKind, site: &str, id: &str, key: i64) {
        let mut s = String::with_capacity(site.len() + id.len() + 2);
        encode(&mut s, kind, site, id);
        self.map.insert(s.into_boxed_str(), key);
        self.max = self.max.max(Some(key));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Every unit with its key, in no order.
    pub fn iter(&self) -> impl Iterator<Item = ((UnitKind, &str, &str), i64)> + '_ {
        self.map.iter().filter_map(|(k, v)| {
            let kind = kind_of(k.chars().next()?)?;
            let (site, id) = k[1..].split_once('\0')?;
            Some(((kind, site, id), *v))
        })
    }

    /// The largest key inserted.
    pub fn max_key(&self) -> Option<i64> {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_every_kind_round_trip() {
        let mut k = UnitKeys::default();
        k.insert(UnitKind::Device, "m1", "150621011038MN0001", 7);
        k.insert(UnitKind::System, "m1", "kj", 8);
        k.insert(UnitKind::Site, "m1", "m1", 9);
        assert_eq!(k.get(UnitKind::Device, "m1", "150621011038MN0001"), Some(7));
        assert_eq!(
            k.get(UnitKind::Device, "m1", "kj"),
            None,
            "the kind is part of the key"
        );
        assert_eq!(k.get(UnitKind::Device, "m", "1150621011038MN0001"), None);
        let mut all: Vec<_> = k.iter().collect();
        all.sort_by_key(|x| x.1);
        assert_eq!(
            all,
            vec![
                ((UnitKind::Device, "m1", "150621011038MN0001"), 7),
                ((UnitKind::System, "m1", "kj"), 8),
                ((UnitKind::Site, "m1", "m1"), 9)
            ]
        );
        assert_eq!((k.len(), k.max_key()), (3, Some(9)));
    }
}
