//! Request bodies, validated into FastAPI's 422 shape. Bodies are parsed by hand so that every
//! malformed input gets a precise 4xx and never reaches the store. JSON bodies (every route but
//! login) are read in [`json`], the login form in [`form`].

mod form;
mod json;

pub(crate) use form::{LoginForm, parse_form};
pub(crate) use json::{Fields, parse_json};
