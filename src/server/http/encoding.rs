//! SMS encoding of a message text: GSM-7 when every character is in the
//! GSM 03.38 alphabet, else UCS-2; and how many parts it takes.
//!
//! GSM-7: 160 septets in one part, else 153 per part (the rest is the
//! concatenation header); characters of the extension table take two
//! septets. UCS-2: 70 UTF-16 units in one part, else 67 per part.

/// The most parts an SMS may take (the hosted service's limit).
pub(super) const MAX_PARTS: u32 = 10;

/// The GSM 03.38 basic alphabet.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: each takes an escape and the character.
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// How a text goes over the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Encoded {
    /// `"GSM-7"` or `"UCS-2"`.
    pub name: &'static str,
    pub parts: u32,
    /// Characters in the text.
    pub chars: u32,
}

/// The encoding a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Requested {
    Auto,
    Gsm7,
    Ucs2,
}

impl Requested {
    pub(super) fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Requested::Auto),
            "gsm7" => Some(Requested::Gsm7),
            "ucs2" => Some(Requested::Ucs2),
            _ => None,
        }
    }
}

/// Septets of `text` in GSM-7, or `None` if a character is not in the alphabet.
fn gsm_septets(text: &str) -> Option<u32> {
    text.chars().try_fold(0u32, |n, c| match gsm_cost(c) {
        0 => None,
        cost => Some(n + cost),
    })
}

/// Septets `c` takes in GSM-7: 1 in the basic alphabet, 2 in the
/// extension table, 0 if in neither. ASCII, nearly every character of
/// most texts, is one look-up; scanning the alphabets for each character
/// cost about 12 ns, more than the rest of reading a send.
#[inline]
fn gsm_cost(c: char) -> u32 {
    match c {
        _ if c.is_ascii() => u32::from(ASCII_SEPTETS[c as usize]),
        _ if GSM_BASIC.contains(c) => 1,
        _ if GSM_EXTENDED.contains(c) => 2,
        _ => 0,
    }
}

/// [`gsm_cost`] of each ASCII character, from the two alphabets.
const ASCII_SEPTETS: [u8; 128] = mark(mark([0; 128], GSM_BASIC, 1), GSM_EXTENDED, 2);

/// `table` with each ASCII character of `alphabet` costing `septets`.
const fn mark(mut table: [u8; 128], alphabet: &str, septets: u8) -> [u8; 128] {
    let bytes = alphabet.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii() {
            table[bytes[i] as usize] = septets;
        }
        i += 1;
    }
    table
}

fn parts(units: u32, single: u32, multi: u32) -> u32 {
    if units <= single {
        1
    } else {
        units.div_ceil(multi)
    }
}

/// Encodes `text` as asked; `None` when GSM-7 is forced on a text outside its alphabet.
pub(super) fn encode(text: &str, requested: Requested) -> Option<Encoded> {
    let chars = text.chars().count() as u32;
    let ucs2 = || Encoded {
        name: "UCS-2",
        parts: parts(text.encode_utf16().count() as u32, 70, 67),
        chars,
    };
    match (requested, gsm_septets(text)) {
        (Requested::Ucs2, _) => Some(ucs2()),
        (_, Some(septets)) => Some(Encoded {
            name: "GSM-7",
            parts: parts(septets, 160, 153),
            chars,
        }),
        (Requested::Auto, None) => Some(ucs2()),
        (Requested::Gsm7, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_part_boundaries() {
        let at = |n: usize| encode(&"a".repeat(n), Requested::Auto).unwrap();
        assert_eq!((at(160).name, at(160).parts), ("GSM-7", 1));
        assert_eq!(at(161).parts, 2);
        assert_eq!(at(306).parts, 2);
        assert_eq!(at(307).parts, 3);
        assert_eq!(at(0).parts, 1);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        let e = encode(&"€".repeat(80), Requested::Auto).unwrap();
        assert_eq!((e.name, e.parts, e.chars), ("GSM-7", 1, 80));
        let e = encode(&format!("{}€", "a".repeat(159)), Requested::Auto).unwrap();
        assert_eq!(e.parts, 2);
    }

    #[test]
    fn ucs2_when_needed_with_its_boundaries() {
        let e = encode(&"ж".repeat(70), Requested::Auto).unwrap();
        assert_eq!((e.name, e.parts), ("UCS-2", 1));
        assert_eq!(encode(&"ж".repeat(71), Requested::Auto).unwrap().parts, 2);
        assert_eq!(encode(&"ж".repeat(134), Requested::Auto).unwrap().parts, 2);
        assert_eq!(encode(&"ж".repeat(135), Requested::Auto).unwrap().parts, 3);
        // An emoji is two UTF-16 units but one character.
        let e = encode("😀", Requested::Auto).unwrap();
        assert_eq!((e.chars, e.parts), (1, 1));
    }

    /// Every character of both alphabets, and others around them, costs
    /// what a scan of the alphabets says it does.
    #[test]
    fn each_character_costs_what_the_alphabets_say() {
        let by_scan = |c: char| {
            if GSM_BASIC.contains(c) {
                1
            } else if GSM_EXTENDED.contains(c) {
                2
            } else {
                0
            }
        };
        let others = (0..0x800u32)
            .chain(0x2000..0x2100)
            .filter_map(char::from_u32);
        for c in GSM_BASIC.chars().chain(GSM_EXTENDED.chars()).chain(others) {
            assert_eq!(gsm_cost(c), by_scan(c), "{c:?}");
        }
        assert_eq!(gsm_septets("a€b"), Some(4));
        assert_eq!(gsm_septets("a`b"), None);
    }

    #[test]
    fn forced_encodings() {
        assert_eq!(encode("hello", Requested::Ucs2).unwrap().name, "UCS-2");
        assert_eq!(encode("привет", Requested::Gsm7), None);
        assert_eq!(Requested::parse("latin1"), None);
    }
}
