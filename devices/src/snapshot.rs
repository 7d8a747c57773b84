//! Snapshots of the board: every device derives serde's traits; host
//! resources (the console's and serial ports' host ends, disk image files)
//! are not state and are skipped, then handed over from the live board by
//! [`crate::Pc::restore`].

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Arrays longer than serde's 32-element limit, as sequences.
pub(crate) mod big_array {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Serialize, const N: usize>(
        a: &[T; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(a.iter())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
        d: D,
    ) -> Result<[T; N], D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        let len = v.len();
        v.try_into()
            .map_err(|_| D::Error::invalid_length(len, &"an array of the device's size"))
    }
}

/// A disk's overlay (sector → contents), sorted by sector so that equal
/// overlays give equal bytes.
pub(crate) mod overlay {
    use super::*;
    use std::collections::HashMap;

    const N: usize = crate::disk::SECTOR_SIZE;

    pub(crate) fn serialize<S: Serializer>(
        m: &HashMap<u64, Box<[u8; N]>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(u64, &[u8])> = m.iter().map(|(k, b)| (*k, &b[..])).collect();
        v.sort_unstable_by_key(|e| e.0);
        s.collect_seq(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<u64, Box<[u8; N]>>, D::Error> {
        let v = Vec::<(u64, Vec<u8>)>::deserialize(d)?;
        let mut m = HashMap::with_capacity(v.len());
        for (k, b) in v {
            let len = b.len();
            let b: Box<[u8; N]> = b
                .into_boxed_slice()
                .try_into()
                .map_err(|_| D::Error::invalid_length(len, &"a 512-byte sector"))?;
            m.insert(k, b);
        }
        Ok(m)
    }
}
