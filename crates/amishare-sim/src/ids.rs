//! Deterministic identifiers: a splitmix64 stream seeded by the world's seed.

use amishare_core::{GrantId, ImageId, InstanceId, KeyId, SnapshotId, VolumeId};

/// The world's ID generator: the same seed and the same calls give the same
/// IDs.
#[derive(Debug, Clone)]
pub(crate) struct IdGen {
    state: u64,
}

impl IdGen {
    pub(crate) fn new(seed: u64) -> IdGen {
        IdGen { state: seed }
    }

    /// Where the sequence stands, so a saved world goes on where it stopped.
    pub(crate) fn position(&self) -> u64 {
        self.state
    }

    /// The next number of the splitmix64 sequence.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `[0, 1)`: the next number's top 53 bits.
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `<prefix>` and 17 hexadecimal digits, the form of current EC2 IDs.
    fn ec2_id(&mut self, prefix: &str) -> Text {
        let mut text = Text::default();
        text.push_str(prefix);
        text.push_str("0");
        text.push_hex(self.next_u64(), 16);
        text
    }

    pub(crate) fn image(&mut self) -> ImageId {
        ImageId::parse(self.ec2_id("ami-").as_str()).expect("generated image IDs are well-formed")
    }

    pub(crate) fn snapshot(&mut self) -> SnapshotId {
        SnapshotId::parse(self.ec2_id("snap-").as_str())
            .expect("generated snapshot IDs are well-formed")
    }

    pub(crate) fn volume(&mut self) -> VolumeId {
        VolumeId::parse(self.ec2_id("vol-").as_str()).expect("generated volume IDs are well-formed")
    }

    pub(crate) fn instance(&mut self) -> InstanceId {
        InstanceId::parse(self.ec2_id("i-").as_str())
            .expect("generated instance IDs are well-formed")
    }

    /// A launch template ID, `lt-` and 17 hexadecimal digits.
    pub(crate) fn launch_template(&mut self) -> String {
        self.ec2_id("lt-").as_str().to_owned()
    }

    /// A version-4-shaped UUID (Auto Scaling's group and activity IDs).
    pub(crate) fn uuid(&mut self) -> String {
        self.key().to_string()
    }

    /// A version-4-shaped UUID.
    pub(crate) fn key(&mut self) -> KeyId {
        let a = self.next_u64();
        let b = self.next_u64();
        let mut text = Text::default();
        text.push_hex(a >> 32, 8);
        text.push_str("-");
        text.push_hex((a >> 16) & 0xffff, 4);
        text.push_str("-");
        text.push_hex(0x4000 | (a & 0x0fff), 4);
        text.push_str("-");
        text.push_hex(0x8000 | ((b >> 48) & 0x3fff), 4);
        text.push_str("-");
        text.push_hex(b & 0xffff_ffff_ffff, 12);
        KeyId::parse(text.as_str()).expect("generated key IDs are well-formed")
    }

    /// 64 hexadecimal digits, like KMS grant IDs.
    pub(crate) fn grant(&mut self) -> GrantId {
        let mut text = Text::default();
        for _ in 0..4 {
            text.push_hex(self.next_u64(), 16);
        }
        GrantId::parse(text.as_str()).expect("generated grant IDs are well-formed")
    }
}

/// A short ASCII text built on the stack.
struct Text {
    buf: [u8; 64],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Text {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Text {
    fn push_str(&mut self, text: &str) {
        self.buf[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
        self.len += text.len();
    }

    /// `value` as `width` lowercase hexadecimal digits (`{:0width$x}` for a
    /// value that fits).
    fn push_hex(&mut self, value: u64, width: usize) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, slot) in self.buf[self.len..self.len + width].iter_mut().enumerate() {
            let shift = 4 * (width - 1 - i);
            *slot = DIGITS[((value >> shift) & 0xf) as usize];
        }
        self.len += width;
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("hexadecimal digits and ASCII prefixes")
    }
}
