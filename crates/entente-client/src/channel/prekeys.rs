//! Our Signal identity and prekeys: generated here, private halves kept in the
//! device database, public halves published in the provider's key directory, and
//! topped up when the provider says they run low.

use entente_core::signal::keys::{IdentityKeyPair, PrivateKey};
use entente_core::signal::pqxdh::KemKeyPair;
use entente_core::signal::session::PreKeyStore;
use entente_wire::signal::{
    KyberPreKey as KyberPreKeyJson, OneTimePreKey, PreKeyStatus, PreKeyUpload, SignedPreKey,
};
use rand::Rng as _;
use rand::rngs::OsRng;
use rusqlite::{Connection, OptionalExtension, params};

use super::Protocols;
use crate::store::{set_setting, setting, storage};
use crate::{Client, ClientError, now_secs};

/// One-time prekeys (classic and ML-KEM) kept on the provider.
pub const PREKEY_TARGET: u32 = 100;
/// Top up when fewer than this many are left.
pub const PREKEY_LOW_WATER: u32 = 20;
/// A signed prekey older than this is replaced (the old one is kept for late
/// messages until [`SIGNED_PREKEY_KEEP_SECS`]).
pub const SIGNED_PREKEY_ROTATE_SECS: u64 = 7 * 24 * 3600;
/// How long a replaced signed prekey still opens sessions started with it.
pub const SIGNED_PREKEY_KEEP_SECS: u64 = 30 * 24 * 3600;
/// libsignal's prekey ids are 24-bit.
const MAX_PREKEY_ID: u32 = 0x00FF_FFFF;

const SIGNED: &str = "signed";
const ONE_TIME: &str = "one_time";
const KYBER: &str = "kyber";

/// This device's Signal identity.
pub(crate) struct LocalIdentity {
    pub pair: IdentityKeyPair,
    pub registration_id: u32,
    pub device_id: u32,
    pub protocols: Protocols,
}

/// The identity, created on first use (devices registered before the channel
/// existed get one the first time they need it).
pub(crate) fn identity(
    conn: &Connection,
    create_as: Protocols,
) -> Result<LocalIdentity, ClientError> {
    if let Some(found) = load_identity(conn)? {
        return Ok(found);
    }
    let pair = IdentityKeyPair::generate(&mut OsRng);
    // libsignal: a 14-bit registration id, never 0; device ids are small integers.
    let registration_id = OsRng.gen_range(1..=16380u32);
    let device_id = OsRng.gen_range(1..=127u32);
    conn.execute(
        "INSERT INTO signal_identity (id, private, registration_id, device_id, protocols)
         VALUES (1, ?1, ?2, ?3, ?4)",
        params![
            pair.private().to_bytes().as_slice(),
            registration_id,
            device_id,
            create_as.as_str()
        ],
    )
    .map_err(storage)?;
    Ok(LocalIdentity {
        pair,
        registration_id,
        device_id,
        protocols: create_as,
    })
}

pub(crate) fn load_identity(conn: &Connection) -> Result<Option<LocalIdentity>, ClientError> {
    let row: Option<(Vec<u8>, u32, u32, String)> = conn
        .query_row(
            "SELECT private, registration_id, device_id, protocols FROM signal_identity",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(storage)?;
    let Some((private, registration_id, device_id, protocols)) = row else {
        return Ok(None);
    };
    let bytes: [u8; 32] = private
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::Storage("Signal identity key has the wrong length".into()))?;
    Ok(Some(LocalIdentity {
        pair: IdentityKeyPair::from_private(PrivateKey::from_bytes(bytes)),
        registration_id,
        device_id,
        protocols: Protocols::parse(&protocols)?,
    }))
}

fn next_prekey_id(conn: &Connection, kind: &str) -> Result<u32, ClientError> {
    let key = format!("signal_next_{kind}_id");
    let next: u32 = setting(conn, &key)?
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| OsRng.gen_range(1..MAX_PREKEY_ID / 2));
    let after = if next >= MAX_PREKEY_ID { 1 } else { next + 1 };
    set_setting(conn, &key, &after.to_string())?;
    Ok(next)
}

fn store_private(
    conn: &Connection,
    kind: &str,
    id: u32,
    private: &[u8],
    last_resort: bool,
) -> Result<(), ClientError> {
    conn.execute(
        "INSERT OR REPLACE INTO signal_prekeys (kind, id, private, last_resort, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind, id, private, last_resort, now_secs() as i64],
    )
    .map_err(storage)?;
    Ok(())
}

/// Forgets a one-time prekey once a session used it (last-resort keys stay).
pub(crate) fn consume(
    conn: &Connection,
    one_time: Option<u32>,
    kyber: Option<u32>,
) -> Result<(), ClientError> {
    if let Some(id) = one_time {
        conn.execute(
            "DELETE FROM signal_prekeys WHERE kind = ?1 AND id = ?2",
            params![ONE_TIME, id],
        )
        .map_err(storage)?;
    }
    if let Some(id) = kyber {
        conn.execute(
            "DELETE FROM signal_prekeys WHERE kind = ?1 AND id = ?2 AND last_resort = 0",
            params![KYBER, id],
        )
        .map_err(storage)?;
    }
    Ok(())
}

/// The private prekeys, as a core [`PreKeyStore`] over the device database.
pub(crate) struct LocalPreKeys<'a>(pub &'a Connection);

impl LocalPreKeys<'_> {
    fn private(&self, kind: &str, id: u32) -> Option<Vec<u8>> {
        self.0
            .query_row(
                "SELECT private FROM signal_prekeys WHERE kind = ?1 AND id = ?2",
                params![kind, id],
                |r| r.get(0),
            )
            .optional()
            .ok()
            .flatten()
    }
}

impl PreKeyStore for LocalPreKeys<'_> {
    fn signed_prekey(&self, id: u32) -> Option<PrivateKey> {
        let b: [u8; 32] = self.private(SIGNED, id)?.as_slice().try_into().ok()?;
        Some(PrivateKey::from_bytes(b))
    }

    fn one_time_prekey(&self, id: u32) -> Option<PrivateKey> {
        let b: [u8; 32] = self.private(ONE_TIME, id)?.as_slice().try_into().ok()?;
        Some(PrivateKey::from_bytes(b))
    }

    fn kyber_prekey(&self, id: u32) -> Option<KemKeyPair> {
        KemKeyPair::from_bytes(&self.private(KYBER, id)?).ok()
    }
}

impl Client {
    /// Publishes our Signal identity and prekeys and tops up one-time prekeys
    /// (classic and ML-KEM) on the provider; rotates the signed prekey weekly.
    /// Returns the provider's status afterwards.
    pub async fn replenish_prekeys(&self) -> Result<PreKeyStatus, ClientError> {
        let status: PreKeyStatus = self
            .signed::<(), _>(reqwest::Method::GET, "/v1/signal/prekeys", None)
            .await?;
        let upload = crate::blocking(|| {
            let local = self.db();
            let conn: &Connection = &local;
            conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
            let built = build_upload(conn, &status);
            match built {
                Ok(u) => {
                    conn.execute_batch("COMMIT").map_err(storage)?;
                    Ok(u)
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })?;
        let Some(upload) = upload else {
            return Ok(status);
        };
        let mut upload = upload;
        for _ in 0..4 {
            match self
                .signed(reqwest::Method::POST, "/v1/signal/prekeys", Some(&upload))
                .await
            {
                // Another device of ours drew the same small device id: draw again.
                Err(ClientError::Provider {
                    status: 409, code, ..
                }) if code == "device_id_taken" => {
                    let device_id = OsRng.gen_range(1..=127u32);
                    self.db()
                        .execute(
                            "UPDATE signal_identity SET device_id = ?1",
                            params![device_id],
                        )
                        .map_err(storage)?;
                    upload.device_id = device_id;
                }
                other => return other,
            }
        }
        Err(ClientError::Provider {
            status: 409,
            code: "device_id_taken".into(),
            message: "no free Signal device id found for this device; try again".into(),
            retry_after_secs: None,
        })
    }
}

/// What to upload, given the provider's status; the private halves are stored
/// (in the caller's transaction) before anything leaves the device.
fn build_upload(
    conn: &Connection,
    status: &PreKeyStatus,
) -> Result<Option<PreKeyUpload>, ClientError> {
    let me = identity(conn, Protocols::MlsAndSignal)?;
    let now = now_secs();
    let newest_signed: Option<i64> = conn
        .query_row(
            "SELECT MAX(created_at) FROM signal_prekeys WHERE kind = ?1",
            params![SIGNED],
            |r| r.get(0),
        )
        .map_err(storage)?;
    let rotate = match newest_signed {
        None => true,
        Some(t) => now.saturating_sub(t as u64) >= SIGNED_PREKEY_ROTATE_SECS,
    };
    let mut rng = OsRng;
    let signed_prekey = if rotate || !status.signed_prekey {
        let key = PrivateKey::generate(&mut rng);
        let id = next_prekey_id(conn, SIGNED)?;
        store_private(conn, SIGNED, id, key.to_bytes().as_slice(), false)?;
        let public = key.public_key().encode();
        Some(SignedPreKey {
            id,
            public: public.to_vec(),
            signature: me.pair.private().sign(&public, &mut rng).to_vec(),
        })
    } else {
        None
    };
    // Replaced signed and last-resort prekeys stay for late first messages, then go.
    for (kind, only_last_resort) in [(SIGNED, false), (KYBER, true)] {
        conn.execute(
            "DELETE FROM signal_prekeys WHERE kind = ?1 AND created_at < ?2
             AND (?3 = 0 OR last_resort = 1)
             AND created_at < (SELECT MAX(created_at) FROM signal_prekeys
                               WHERE kind = ?1 AND (?3 = 0 OR last_resort = 1))",
            params![
                kind,
                now.saturating_sub(SIGNED_PREKEY_KEEP_SECS) as i64,
                only_last_resort
            ],
        )
        .map_err(storage)?;
    }
    let mut one_time_prekeys = Vec::new();
    if status.one_time_prekeys < PREKEY_LOW_WATER {
        for _ in status.one_time_prekeys..PREKEY_TARGET {
            let key = PrivateKey::generate(&mut rng);
            let id = next_prekey_id(conn, ONE_TIME)?;
            store_private(conn, ONE_TIME, id, key.to_bytes().as_slice(), false)?;
            one_time_prekeys.push(OneTimePreKey {
                id,
                public: key.public_key().encode().to_vec(),
            });
        }
    }
    let mut new_kyber = |last_resort: bool| -> Result<KyberPreKeyJson, ClientError> {
        let pair = KemKeyPair::generate(&mut rng);
        let id = next_prekey_id(conn, KYBER)?;
        store_private(conn, KYBER, id, pair.to_bytes().as_slice(), last_resort)?;
        let public = pair.public_key().encode();
        let signature = me.pair.private().sign(&public, &mut OsRng).to_vec();
        Ok(KyberPreKeyJson {
            id,
            public,
            signature,
        })
    };
    let mut kyber_prekeys = Vec::new();
    if status.kyber_prekeys < PREKEY_LOW_WATER {
        for _ in status.kyber_prekeys..PREKEY_TARGET {
            kyber_prekeys.push(new_kyber(false)?);
        }
    }
    let has_last_resort: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM signal_prekeys WHERE kind = ?1 AND last_resort = 1)",
            params![KYBER],
            |r| r.get(0),
        )
        .map_err(storage)?;
    let last_resort_kyber_prekey = if !has_last_resort || signed_prekey.is_some() {
        Some(new_kyber(true)?)
    } else {
        None
    };
    if signed_prekey.is_none()
        && one_time_prekeys.is_empty()
        && kyber_prekeys.is_empty()
        && last_resort_kyber_prekey.is_none()
    {
        return Ok(None);
    }
    Ok(Some(PreKeyUpload {
        identity_key: me.pair.public().encode().to_vec(),
        registration_id: me.registration_id,
        device_id: me.device_id,
        signed_prekey,
        last_resort_kyber_prekey,
        one_time_prekeys,
        kyber_prekeys,
    }))
}
