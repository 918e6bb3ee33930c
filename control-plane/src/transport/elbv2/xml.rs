//! The AWS Query protocol's reply side: `<OpResponse xmlns=…><OpResult>…</OpResult>
//! <ResponseMetadata><RequestId/></ResponseMetadata></OpResponse>`, lists as `<member>`
//! elements, and errors as `<ErrorResponse><Error><Type/><Code/><Message/></Error>`, written
//! with quick-xml (which escapes every text).

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

pub const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// An XML document being written. Writing to memory cannot fail, so the writer's results are
/// not carried around.
pub struct Xml {
    w: Writer<Vec<u8>>,
}

impl Default for Xml {
    fn default() -> Self {
        Self {
            w: Writer::new(Vec::new()),
        }
    }
}

impl Xml {
    fn event(&mut self, e: Event<'_>) {
        let _ = self.w.write_event(e);
    }

    pub fn open(&mut self, name: &str) {
        self.event(Event::Start(BytesStart::new(name)));
    }

    fn open_ns(&mut self, name: &str) {
        let start = BytesStart::new(name).with_attributes([("xmlns", NAMESPACE)]);
        self.event(Event::Start(start));
    }

    pub fn close(&mut self, name: &str) {
        self.event(Event::End(BytesEnd::new(name)));
    }

    /// `<name>value</name>`.
    pub fn text(&mut self, name: &str, value: &str) {
        self.open(name);
        self.event(Event::Text(BytesText::new(value)));
        self.close(name);
    }

    /// `<name>` only when `value` is not empty.
    pub fn opt(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.text(name, value);
        }
    }

    /// `<name><member>…</member>…</name>`.
    pub fn list<T>(&mut self, name: &str, items: &[T], mut each: impl FnMut(&mut Xml, &T)) {
        self.open(name);
        for item in items {
            self.open("member");
            each(self, item);
            self.close("member");
        }
        self.close(name);
    }

    /// `<name><member>text</member>…</name>`.
    pub fn strings(&mut self, name: &str, items: &[String]) {
        self.list(name, items, |x, s| x.event(Event::Text(BytesText::new(s))));
    }

    pub fn into_string(self) -> String {
        String::from_utf8(self.w.into_inner()).unwrap_or_default()
    }
}

/// A successful reply of `action`, its result written by `result`.
pub fn response(action: &str, request_id: &str, result: impl FnOnce(&mut Xml)) -> String {
    let mut x = Xml::default();
    let outer = format!("{action}Response");
    let inner = format!("{action}Result");
    x.open_ns(&outer);
    x.open(&inner);
    result(&mut x);
    x.close(&inner);
    x.open("ResponseMetadata");
    x.text("RequestId", request_id);
    x.close("ResponseMetadata");
    x.close(&outer);
    x.into_string()
}

/// An error reply; `sender`: the client's fault (`Sender`) or the server's (`Receiver`).
pub fn error(code: &str, message: &str, sender: bool, request_id: &str) -> String {
    let mut x = Xml::default();
    x.open_ns("ErrorResponse");
    x.open("Error");
    x.text("Type", if sender { "Sender" } else { "Receiver" });
    x.text("Code", code);
    x.text("Message", message);
    x.close("Error");
    x.text("RequestId", request_id);
    x.close("ErrorResponse");
    x.into_string()
}
