//! A small XML writer for EC2 and STS responses: elements, escaped text,
//! no attributes but the root's namespace.

use std::fmt::{self, Write};

/// An XML document being written, element by element.
#[derive(Debug, Default)]
pub(crate) struct Xml {
    out: String,
}

impl Xml {
    /// Opens `<tag>`.
    pub(crate) fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// Closes `</tag>`.
    pub(crate) fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// `<tag>` … `</tag>` around what `inner` writes.
    pub(crate) fn element(&mut self, tag: &str, inner: impl FnOnce(&mut Xml)) {
        self.open(tag);
        inner(self);
        self.close(tag);
    }

    /// `<tag>` around one `<member>` per item, each written by `item`: the
    /// query protocol's lists (`member` in Auto Scaling and STS, `item` in
    /// EC2).
    pub(crate) fn list<T>(
        &mut self,
        tag: &str,
        member: &str,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Xml, T),
    ) {
        self.element(tag, |out| {
            for each in items {
                out.element(member, |out| item(out, each));
            }
        });
    }

    /// EC2's `tagSet`: an `item` of `key` and `value` per tag.
    pub(crate) fn tag_set<'t>(&mut self, tags: impl IntoIterator<Item = (&'t String, &'t String)>) {
        self.list("tagSet", "item", tags, |out, (key, value)| {
            out.leaf("key", key);
            out.leaf("value", value);
        });
    }

    /// `<tag>text</tag>`, the text escaped.
    pub(crate) fn leaf(&mut self, tag: &str, text: impl fmt::Display) {
        self.open(tag);
        let mut escaper = Escaper { out: &mut self.out };
        write!(escaper, "{text}").expect("writing to a String cannot fail");
        self.close(tag);
    }

    /// `<tag>text</tag>` when there is a text.
    pub(crate) fn leaf_opt(&mut self, tag: &str, text: Option<impl fmt::Display>) {
        if let Some(text) = text {
            self.leaf(tag, text);
        }
    }

    /// `<tag/>`.
    pub(crate) fn empty(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push_str("/>");
    }

    /// A whole document: the declaration, then `<root xmlns="…">` around what
    /// `inner` writes.
    pub(crate) fn document(root: &str, xmlns: &str, inner: impl FnOnce(&mut Xml)) -> String {
        let mut xml = Xml::default();
        xml.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.out.push('<');
        xml.out.push_str(root);
        if !xmlns.is_empty() {
            xml.out.push_str(" xmlns=\"");
            xml.out.push_str(xmlns);
            xml.out.push('"');
        }
        xml.out.push('>');
        inner(&mut xml);
        xml.close(root);
        xml.out
    }

    /// Appends what another writer wrote.
    pub(crate) fn append(&mut self, other: Xml) {
        self.out.push_str(&other.out);
    }
}

/// Escapes the five XML special characters as text is written.
struct Escaper<'a> {
    out: &'a mut String,
}

impl Write for Escaper<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '"' => self.out.push_str("&quot;"),
                '\'' => self.out.push_str("&apos;"),
                c => self.out.push(c),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::Xml;

    #[test]
    fn text_is_escaped_and_elements_nest() {
        let doc = Xml::document("R", "urn:x", |xml| {
            xml.element("a", |xml| xml.leaf("b", "<&'\">"));
            xml.empty("c");
            xml.leaf_opt("d", None::<&str>);
        });
        assert_eq!(
            doc,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:x\"><a><b>&lt;&amp;&apos;&quot;&gt;</b></a><c/></R>"
        );
    }
}
