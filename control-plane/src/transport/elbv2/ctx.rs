//! What every ELBv2 operation handler is given, and its signature.

use super::query::Params;
use super::xml::Xml;
use crate::live::proxies::Proxies;
use crate::state::error::Result;
use crate::state::State;

pub struct Ctx<'a> {
    pub state: &'a State,
    pub proxies: &'a Proxies,
}

pub type Handler = fn(&Ctx<'_>, &Params, &mut Xml) -> Result<()>;
