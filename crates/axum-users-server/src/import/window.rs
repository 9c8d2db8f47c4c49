//! The end of the window in which FastAPI Users' JWTs are accepted
//! (`AXUM_USERS_ACCEPT_FASTAPI_USERS_JWT_UNTIL`): an RFC 3339 time, at most [`MAX_WINDOW_DAYS`]
//! ahead, so that the opt-in cannot be left open by accident.

/// The longest the window may reach ahead of the server's start.
pub(crate) const MAX_WINDOW_DAYS: i64 = 90;

/// The Unix time of `text` (RFC 3339: `2026-12-31T23:59:59Z`, a fraction and a `+hh:mm` offset
/// allowed), refused when it lies more than [`MAX_WINDOW_DAYS`] after `now`. A time already past
/// is accepted: the window is then closed (a server restarted later with the same setting starts).
///
/// # Errors
/// A message saying what is wrong with the value.
pub(crate) fn jwt_window_end(text: &str, now: i64) -> Result<i64, String> {
    let end = parse_rfc3339(text.trim())
        .ok_or_else(|| format!("`{text}` is not an RFC 3339 time such as 2026-12-31T23:59:59Z"))?;
    if end > now + MAX_WINDOW_DAYS * 86_400 {
        return Err(format!(
            "`{text}` is more than {MAX_WINDOW_DAYS} days ahead: FastAPI Users' tokens cannot be \
             revoked one by one, keep the window short (their lifetime is enough)"
        ));
    }
    Ok(end)
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(
            parse_rfc3339("2026-12-02T12:00:00.250Z"),
            Some(1_796_212_800)
        );
        assert_eq!(
            parse_rfc3339("2026-12-02T14:00:00+02:00"),
            Some(1_796_212_800)
        );
        for bad in [
            "2026-12-02",
            "2026-12-02T12:00:00",
            "2026-02-30T00:00:00Z",
            "2026-12-02T25:00:00Z",
            "2026-12-02T12:00:00+2:00",
            "tomorrow",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_window_is_bounded_but_may_be_past() {
        let now = 1_796_212_800;
        assert_eq!(
            jwt_window_end("2026-12-03T12:00:00Z", now),
            Ok(now + 86_400)
        );
        assert!(jwt_window_end("2026-12-01T12:00:00Z", now).is_ok());
        let far = jwt_window_end("2027-06-01T00:00:00Z", now).unwrap_err();
        assert!(far.contains("90 days"), "{far}");
        assert!(
            jwt_window_end("soon", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
