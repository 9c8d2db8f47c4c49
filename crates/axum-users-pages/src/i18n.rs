//! Every string of the pages, one TOML file per language in `locales/`, chosen by the
//! request's `Accept-Language`. A key a translation leaves out falls back to English.

use std::collections::BTreeMap;

use crate::PagesError;

/// The languages shipped, in order of preference when `Accept-Language` names none of them:
/// the tag and its file. Adding one is a file and a line here.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.toml")),
    ("fr", include_str!("../locales/fr.toml")),
];

/// One language's strings.
#[derive(Debug)]
pub(crate) struct Locale {
    pub(crate) tag: &'static str,
    pub(crate) strings: BTreeMap<String, String>,
}

impl Locale {
    /// The string of `key`; the key itself when missing (a test makes sure none is).
    pub(crate) fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.strings.get(key).map_or(key, String::as_str)
    }
}

/// Every shipped language, English first.
#[derive(Debug)]
pub(crate) struct Locales(Vec<Locale>);

impl Locales {
    pub(crate) fn load() -> Result<Self, PagesError> {
        let parse = |tag: &str, text: &str| {
            toml::from_str::<BTreeMap<String, String>>(text)
                .map_err(|e| PagesError::Broken(format!("locales/{tag}.toml: {e}")))
        };
        let english = parse(LANGUAGES[0].0, LANGUAGES[0].1)?;
        let mut all = Vec::new();
        for (tag, text) in LANGUAGES {
            let mut strings = english.clone();
            strings.extend(parse(tag, text)?);
            all.push(Locale { tag, strings });
        }
        Ok(Self(all))
    }

    /// The best language for an `Accept-Language` header: the highest `q` whose primary tag
    /// is shipped; English otherwise.
    pub(crate) fn choose(&self, accept_language: Option<&str>) -> &Locale {
        let mut best: Option<(f32, &Locale)> = None;
        for item in accept_language.unwrap_or_default().split(',').take(16) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let Some(locale) = self.0.iter().find(|l| l.tag.eq_ignore_ascii_case(primary)) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, locale));
            }
        }
        best.map_or(&self.0[0], |(_, l)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_translates_every_key_and_nothing_else() {
        let parse = |text| toml::from_str::<BTreeMap<String, String>>(text).unwrap();
        let english = parse(LANGUAGES[0].1);
        for (tag, text) in &LANGUAGES[1..] {
            let other = parse(text);
            let missing: Vec<_> = english.keys().filter(|k| !other.contains_key(*k)).collect();
            let unknown: Vec<_> = other.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{tag} lacks {missing:?}");
            assert!(unknown.is_empty(), "{tag} has unknown keys {unknown:?}");
            let same = english.iter().filter(|(k, v)| other[*k] == **v).count();
            assert!(same < english.len() / 4, "{tag} is mostly untranslated");
        }
    }

    #[test]
    fn accept_language_picks_the_best_shipped_language() {
        let locales = Locales::load().unwrap();
        let pick = |h| locales.choose(h).tag;
        assert_eq!(pick(None), "en");
        assert_eq!(pick(Some("fr-CH, fr;q=0.9, en;q=0.8")), "fr");
        assert_eq!(pick(Some("de-DE, en;q=0.5, fr;q=0.7")), "fr");
        assert_eq!(pick(Some("de, es")), "en");
        assert_eq!(pick(Some("fr;q=0, en")), "en");
        assert_eq!(pick(Some("EN-gb")), "en");
        assert_eq!(locales.choose(Some("fr")).get("sign_in_title"), "Connexion");
    }
}
