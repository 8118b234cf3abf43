//! `<DTMF>`: send digits to the caller. It needs an answered call. `async` is run like
//! the synchronous form (sending digits returns after a few hundred milliseconds).

use super::Begin;
use crate::call::channel_op::ChannelOp;
use crate::document::model::Dtmf;

pub fn begin(dtmf: Dtmf) -> Begin {
    Begin::Run(ChannelOp::SendDigits {
        digits: dtmf.digits,
    })
}
