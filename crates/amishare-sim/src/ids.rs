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

    /// The next number of the splitmix64 sequence.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 17 hexadecimal digits, the form of current EC2 IDs.
    fn hex17(&mut self) -> String {
        format!("0{:016x}", self.next_u64())
    }

    pub(crate) fn image(&mut self) -> ImageId {
        ImageId::parse(&format!("ami-{}", self.hex17()))
            .expect("generated image IDs are well-formed")
    }

    pub(crate) fn snapshot(&mut self) -> SnapshotId {
        SnapshotId::parse(&format!("snap-{}", self.hex17()))
            .expect("generated snapshot IDs are well-formed")
    }

    pub(crate) fn volume(&mut self) -> VolumeId {
        VolumeId::parse(&format!("vol-{}", self.hex17()))
            .expect("generated volume IDs are well-formed")
    }

    pub(crate) fn instance(&mut self) -> InstanceId {
        InstanceId::parse(&format!("i-{}", self.hex17()))
            .expect("generated instance IDs are well-formed")
    }

    /// A version-4-shaped UUID.
    pub(crate) fn key(&mut self) -> KeyId {
        let a = self.next_u64();
        let b = self.next_u64();
        let text = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            0x4000 | (a & 0x0fff),
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        );
        KeyId::parse(&text).expect("generated key IDs are well-formed")
    }

    /// 64 hexadecimal digits, like KMS grant IDs.
    pub(crate) fn grant(&mut self) -> GrantId {
        let text = format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.next_u64(),
            self.next_u64(),
            self.next_u64(),
            self.next_u64()
        );
        GrantId::parse(&text).expect("generated grant IDs are well-formed")
    }
}
