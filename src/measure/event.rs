//! RTMR3 events: a name and payload, dstack's v1 and v2 event digests, and the register replay.
//! Which events the launcher measures is [`crate::contract`].

use sha2::{Digest as _, Sha384};

use crate::hex;

/// dstack's event type for runtime (RTMR3) events.
pub const EVENT_TYPE: u32 = 0x0800_0001;

/// One runtime event: a name and raw payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub payload: Vec<u8>,
}

impl Event {
    #[must_use]
    pub fn new(name: &str, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            payload: payload.into(),
        }
    }

    /// v1 digest, what every deployed dstack computes:
    /// `SHA384(le_u32(0x08000001) || ":" || name || ":" || payload)`.
    #[must_use]
    pub fn digest(&self) -> [u8; 48] {
        let mut hasher = Sha384::new();
        hasher.update(EVENT_TYPE.to_le_bytes());
        hasher.update(b":");
        hasher.update(self.name.as_bytes());
        hasher.update(b":");
        hasher.update(&self.payload);
        hasher.finalize().into()
    }
}

impl Event {
    /// v2 digest (dstack ≥ 0.6 with `event_log_version: 2`):
    /// `SHA384(JCS({"name":..,"payload":"<lowercase hex>","type":134217729}))`. Keys are in
    /// JCS order already; `serde_json` escapes strings as JCS does.
    #[must_use]
    pub fn digest_v2(&self) -> [u8; 48] {
        let name = serde_json::to_string(&self.name).unwrap_or_default();
        let canonical = format!(
            "{{\"name\":{name},\"payload\":\"{}\",\"type\":{EVENT_TYPE}}}",
            hex::encode(&self.payload)
        );
        Sha384::digest(canonical.as_bytes()).into()
    }
}

/// `acc = SHA384(acc || digest)` over the digests, from 48 zero bytes.
#[must_use]
pub fn replay<'a>(digests: impl IntoIterator<Item = &'a [u8; 48]>) -> [u8; 48] {
    replay_from([0u8; 48], digests)
}

/// Continues a replay from `start`.
#[must_use]
pub fn replay_from<'a>(
    start: [u8; 48],
    digests: impl IntoIterator<Item = &'a [u8; 48]>,
) -> [u8; 48] {
    digests.into_iter().fold(start, |acc, digest| {
        let mut hasher = Sha384::new();
        hasher.update(acc);
        hasher.update(digest);
        hasher.finalize().into()
    })
}

/// Hex of a digest, for logs and JSON.
#[must_use]
pub fn digest_hex(digest: &[u8; 48]) -> String {
    hex::encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real data: NEAR's public attestation (tests/fixtures/near-mpc_public_data.json). Every
    /// RTMR3 digest in its log recomputes from name and payload, the replay equals its RTMR3,
    /// and the last event is `mpc-image-digest` with the 32 raw image-digest bytes.
    #[test]
    fn reproduces_real_dstack_event_digests_and_rtmr3() {
        let text = include_str!("../../tests/fixtures/near-mpc_public_data.json");
        let data: serde_json::Value = serde_json::from_str(text).unwrap();
        let tcb = &data["tee_participant_info"]["Dstack"]["tcb_info"];
        let mut digests = Vec::new();
        for entry in tcb["event_log"].as_array().unwrap() {
            if entry["imr"] != 3 {
                continue;
            }
            let payload = entry["event_payload"].as_str().unwrap();
            let payload: Vec<u8> = (0..payload.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&payload[i..i + 2], 16).unwrap())
                .collect();
            let event = Event::new(entry["event"].as_str().unwrap(), payload);
            assert_eq!(
                digest_hex(&event.digest()),
                entry["digest"],
                "{}",
                event.name
            );
            digests.push(event.digest());
        }
        assert_eq!(digest_hex(&replay(&digests)), tcb["rtmr3"]);

        let image: [u8; 32] =
            hex::decode_exact("564a5aebc33495d5610626d23cb9e3da8e9d531d0edff9e38aa1ccaf059c15d3")
                .unwrap();
        assert_eq!(
            digest_hex(&Event::new("mpc-image-digest", image.to_vec()).digest()),
            "0405a5706797115cdcccb66841205179fa5c2d989ad42fee2e2fab4c5b52bb6d9aa9bf8a86755d37e8566fdaabebc468"
        );
    }
}
