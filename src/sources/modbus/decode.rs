//! Turning the words (or bits) a device answered into engineering values: data type, word
//! order, byte swap, then `raw × scale + offset`. Pure functions, and their inverse (`encode`)
//! for the simulator.

use super::config::{DataType, RegisterConfig, WordOrder};

/// The raw value of a word-table register from its `width()` words, as read in address order.
/// `words` must hold at least `width()` words; fewer is a bug in the plan, reported as `None`.
pub fn decode_words(t: DataType, order: WordOrder, byte_swap: bool, words: &[u16]) -> Option<f64> {
    let w = |i: usize| -> Option<u16> {
        let x = *words.get(i)?;
        Some(if byte_swap { x.swap_bytes() } else { x })
    };
    let pair = || -> Option<u32> {
        let (a, b) = (w(0)?, w(1)?);
        let (hi, lo) = match order {
            WordOrder::Big => (a, b),
            WordOrder::Little => (b, a),
        };
        Some(((hi as u32) << 16) | lo as u32)
    };
    Some(match t {
        DataType::U16 => w(0)? as f64,
        DataType::I16 => w(0)? as i16 as f64,
        DataType::Bool => (w(0)? != 0) as u8 as f64,
        DataType::U32 => pair()? as f64,
        DataType::I32 => pair()? as i32 as f64,
        DataType::F32 => f32::from_bits(pair()?) as f64,
    })
}

/// The inverse of [`decode_words`]: the words a device holds for `raw`.
pub fn encode_words(t: DataType, order: WordOrder, byte_swap: bool, raw: f64) -> Vec<u16> {
    let bits32 = |v: u32| -> Vec<u16> {
        let (hi, lo) = ((v >> 16) as u16, v as u16);
        match order {
            WordOrder::Big => vec![hi, lo],
            WordOrder::Little => vec![lo, hi],
        }
    };
    let words = match t {
        DataType::U16 => vec![raw as u16],
        DataType::I16 => vec![raw as i16 as u16],
        DataType::Bool => vec![(raw != 0.0) as u16],
        DataType::U32 => bits32(raw as u32),
        DataType::I32 => bits32(raw as i32 as u32),
        DataType::F32 => bits32((raw as f32).to_bits()),
    };
    if byte_swap {
        words.into_iter().map(u16::swap_bytes).collect()
    } else {
        words
    }
}

/// `raw × scale + offset`.
pub fn scaled(r: &RegisterConfig, raw: f64) -> f64 {
    raw * r.scale + r.offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;
    use WordOrder::*;

    #[test]
    fn sixteen_bit_types() {
        assert_eq!(decode_words(U16, Big, false, &[0xFFFE]), Some(65534.0));
        assert_eq!(decode_words(I16, Big, false, &[0xFFFE]), Some(-2.0));
        assert_eq!(decode_words(I16, Big, true, &[0xFEFF]), Some(-2.0));
        assert_eq!(decode_words(U16, Big, true, &[0x3412]), Some(0x1234 as f64));
        assert_eq!(decode_words(Bool, Big, false, &[0x0100]), Some(1.0));
        assert_eq!(decode_words(Bool, Big, false, &[0]), Some(0.0));
    }

    #[test]
    fn thirty_two_bit_types_in_every_order() {
        // 0x12345678 as ABCD, CDAB, BADC, DCBA.
        let cases = [
            (Big, false, [0x1234, 0x5678]),
            (Little, false, [0x5678, 0x1234]),
            (Big, true, [0x3412, 0x7856]),
            (Little, true, [0x7856, 0x3412]),
        ];
        for (o, swap, words) in cases {
            assert_eq!(
                decode_words(U32, o, swap, &words),
                Some(0x1234_5678 as f64),
                "{o:?} {swap}"
            );
            assert_eq!(encode_words(U32, o, swap, 0x1234_5678 as f64), words);
        }
        assert_eq!(decode_words(I32, Big, false, &[0xFFFF, 0xFFFE]), Some(-2.0));
        assert_eq!(
            decode_words(I32, Little, false, &[0xFFFE, 0xFFFF]),
            Some(-2.0)
        );
        // 12.5f32 = 0x41480000
        assert_eq!(decode_words(F32, Big, false, &[0x4148, 0x0000]), Some(12.5));
        assert_eq!(
            decode_words(F32, Little, false, &[0x0000, 0x4148]),
            Some(12.5)
        );
        assert_eq!(decode_words(F32, Big, true, &[0x4841, 0x0000]), Some(12.5));
    }

    #[test]
    fn round_trips_and_short_input() {
        for t in [U16, I16, U32, I32, F32] {
            for o in [Big, Little] {
                for swap in [false, true] {
                    let raw = match t {
                        U16 => 40000.0,
                        I16 => -1234.0,
                        U32 => 3_000_000_000.0,
                        I32 => -2_000_000_000.0,
                        _ => -273.25,
                    };
                    let w = encode_words(t, o, swap, raw);
                    assert_eq!(w.len(), t.width() as usize);
                    assert_eq!(
                        decode_words(t, o, swap, &w),
                        Some(raw),
                        "{t:?} {o:?} {swap}"
                    );
                }
            }
        }
        assert_eq!(decode_words(U32, Big, false, &[1]), None);
        assert_eq!(decode_words(U16, Big, false, &[]), None);
    }
}
