//! Joining a room by external commit (draft-ietf-mimi-protocol-06 section 5.6):
//! a user's new device claims the room's GroupInfo and tree from the hub, encrypted
//! to a one-time HPKE key, and commits itself into the group. The hub checks the
//! commit like any other; the room policy must allow it (canAddOwnClient for a
//! participant's new device).

use entente_wire::api::{GroupInfoCall, HubAnswer, UpdateCall, UserRooms};
use entente_wire::ids::RoomId;
use entente_wire::mimi::{
    GroupInfoRatchetTreeTBE, GroupInfoRequestTBS, GroupInfoResponse, GroupInfoResult, Protocol,
    RatchetTreeOption,
};
use openmls::prelude::{
    BasicCredential, ExternalSender, LeafNodeParameters, MlsGroup, MlsMessageOut,
    OpenMlsCrypto as _, OpenMlsProvider as _, SignaturePublicKey, VerifiableCiphersuite,
};
use rand::RngCore;
use rusqlite::params;
use tls_codec::Serialize as _;

use crate::frames::{self, UpdateOutcome};
use crate::rooms::{EPOCH_RETRIES, join_config, room_path, verify_members};
use crate::store::{MlsProvider, storage};
use crate::{Client, ClientError, Local, now_secs};

const REQUEST_LABEL: &str = "GroupInfoRequestTBS";
const RESPONSE_LABEL: &str = "GroupInfoResponseTBS";
const ENCRYPTION_LABEL: &str = "GroupInfo and ratchet_tree encryption";

impl Client {
    /// Joins every room our user is in that this device is not in yet, by external
    /// commit. Returns the rooms joined.
    pub async fn join_my_rooms(&mut self) -> Result<Vec<RoomId>, ClientError> {
        let listed: UserRooms = self
            .signed::<(), _>(reqwest::Method::GET, "/v1/rooms", None)
            .await?;
        let mine: Vec<RoomId> = self.rooms()?.into_iter().map(|r| r.room).collect();
        let mut joined = Vec::new();
        for r in listed.rooms {
            let room: RoomId = r
                .parse()
                .map_err(|e| ClientError::Protocol(format!("provider listed room {r}: {e}")))?;
            if mine.contains(&room) {
                continue;
            }
            self.join_external(&room).await?;
            joined.push(room);
        }
        Ok(joined)
    }

    /// Joins `room` by external commit.
    pub async fn join_external(&mut self, room: &RoomId) -> Result<(), ClientError> {
        if self.require_room(room).is_ok() {
            return Err(ClientError::Usage(format!(
                "this device is in {room} already"
            )));
        }
        let hub_key = self.issuer_key(room.domain()).await?;
        for attempt in 0..EPOCH_RETRIES {
            // A one-time HPKE key for the hub's answer.
            let mut ikm = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut ikm);
            let keys = self
                .crypto
                .derive_hpke_keypair(entente_core::mls::CIPHERSUITE.hpke_config(), &ikm)
                .map_err(|e| ClientError::Bug(format!("HPKE key: {e:?}")))?;
            let cred = self.credential_with_key();
            let tbs = GroupInfoRequestTBS {
                protocol: Protocol::Mls10,
                cipher_suite: VerifiableCiphersuite::from(entente_core::mls::CIPHERSUITE),
                requesting_signature_key: cred.signature_key.clone(),
                requesting_credential: cred.credential.clone(),
                group_info_public_key: keys.public.clone().into(),
                joining_code: Vec::new().into(),
            };
            let tbs_bytes = tbs.encode().map_err(|e| ClientError::Bug(e.to_string()))?;
            let content = entente_core::mls::sign_content(REQUEST_LABEL, &tbs_bytes)
                .map_err(|e| ClientError::Bug(e.to_string()))?;
            let sig = openmls_traits::signatures::Signer::sign(&self.signer, &content)
                .map_err(|e| ClientError::Bug(format!("signing: {e:?}")))?;
            let request = tbs
                .into_request(sig)
                .encode()
                .map_err(|e| ClientError::Bug(e.to_string()))?;
            let answer: HubAnswer = self
                .signed(
                    reqwest::Method::POST,
                    &room_path(room, "group-info"),
                    Some(&GroupInfoCall { request }),
                )
                .await?;
            let response = GroupInfoResponse::decode(&answer.response)
                .map_err(|e| ClientError::Protocol(format!("GroupInfoResponse: {e}")))?;
            let success = match &response.result {
                GroupInfoResult::Success(s) => s.clone(),
                GroupInfoResult::NotAuthorized => {
                    return Err(ClientError::Provider {
                        status: 403,
                        code: "not_authorized".into(),
                        message: format!("the room policy of {room} does not let this device join"),
                        retry_after_secs: None,
                    });
                }
                GroupInfoResult::NoSuchRoom => {
                    return Err(ClientError::Usage(format!("{room} does not exist")));
                }
            };
            // The hub signs with its issuer key, which we pinned for its domain.
            let hub_signature_key = SignaturePublicKey::from(hub_key.to_bytes().to_vec());
            let expected = ExternalSender::new(
                hub_signature_key.clone(),
                BasicCredential::new(room.domain().to_string().into_bytes()).into(),
            );
            if success.hub_sender != expected {
                return Err(ClientError::Untrusted(format!(
                    "the GroupInfoResponse is not signed by {}'s issuer key",
                    room.domain()
                )));
            }
            let response_tbs = response
                .tbs_bytes()
                .map_err(|e| ClientError::Protocol(e.to_string()))?
                .ok_or_else(|| ClientError::Protocol("unsigned GroupInfoResponse".into()))?;
            entente_core::mls::verify_with_label(
                &self.crypto,
                &hub_signature_key,
                RESPONSE_LABEL,
                &response_tbs,
                success.signature.as_slice(),
            )
            .map_err(|_| {
                ClientError::Untrusted("the GroupInfoResponse signature does not verify".into())
            })?;
            let plaintext = entente_core::mls::decrypt_with_label(
                &self.crypto,
                &keys.private,
                ENCRYPTION_LABEL,
                room.to_string().as_bytes(),
                &success.encrypted_groupinfo_and_tree,
            )
            .map_err(|e| ClientError::Untrusted(format!("the encrypted GroupInfo: {e}")))?;
            let tbe = GroupInfoRatchetTreeTBE::decode(&plaintext)
                .map_err(|e| ClientError::Protocol(format!("GroupInfoRatchetTreeTBE: {e}")))?;
            let RatchetTreeOption::Full(tree) = tbe.ratchet_tree_option else {
                return Err(ClientError::Protocol(
                    "the hub did not send the ratchet tree".into(),
                ));
            };
            // Every member's certificate must verify before we join: fetch the
            // issuer keys it needs first.
            let tree_bytes = tree
                .tls_serialize_detached()
                .map_err(|e| ClientError::Bug(e.to_string()))?;
            let mut domains = frames::domains_in(&tree_bytes);
            domains.sort();
            domains.dedup();
            for d in domains.iter().take(64) {
                self.issuer_key(d).await?;
            }
            // In one transaction: a group whose members do not all verify is rolled
            // back, never stored.
            let request = crate::blocking(|| {
                let mut local = self.db();
                let Local {
                    conn,
                    groups,
                    verifier,
                } = &mut *local;
                groups.transaction(conn, |tx| {
                let conn = tx.conn();
                let provider = MlsProvider::new(&self.crypto, conn);
                let mls = |e: &dyn std::fmt::Display| {
                    ClientError::Mls(format!("joining by external commit: {e}"))
                };
                let (group, bundle) = MlsGroup::external_commit_builder()
                    .with_ratchet_tree(tree)
                    .with_config(join_config())
                    .build_group(&provider, tbe.group_info, cred)
                    .map_err(|e| mls(&e))?
                    .leaf_node_parameters(
                        LeafNodeParameters::builder()
                            .with_capabilities(crate::keys::capabilities())
                            .build(),
                    )
                    .load_psks(provider.storage())
                    .map_err(|e| mls(&e))?
                    .create_group_info(true)
                    .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
                    .map_err(|e| mls(&e))?
                    .finalize(&provider)
                    .map_err(|e| mls(&e))?;
                verify_members(verifier, conn, group.members())?;
                let group = tx.insert(group);
                crate::manage::room_state_of(group)?;
                let (commit, _, group_info) = bundle.into_contents();
                let group_info: MlsMessageOut = group_info
                    .ok_or_else(|| ClientError::Bug("the commit produced no GroupInfo".into()))?
                    .into();
                let tree = group.export_ratchet_tree();
                conn.execute(
                    "INSERT OR IGNORE INTO rooms (room, joined_at, joined_epoch) VALUES (?1, ?2, ?3)",
                    params![room.to_string(), now_secs() as i64, group.epoch().as_u64() as i64],
                )
                .map_err(storage)?;
                frames::update_request(&commit, None, &group_info, tree)
                })
            })?;
            let sent: Result<HubAnswer, _> = self
                .signed(
                    reqwest::Method::POST,
                    &room_path(room, "update"),
                    Some(&UpdateCall { request }),
                )
                .await;
            let outcome = sent.and_then(|a| frames::parse_update_response(&a.response));
            match outcome {
                Ok(UpdateOutcome::Success { .. }) => return Ok(()),
                Ok(UpdateOutcome::WrongEpoch { current }) => {
                    tracing::info!(
                        attempt,
                        current,
                        "the room moved on; claiming its state again"
                    );
                    self.forget_room(room)?;
                }
                Ok(UpdateOutcome::Refused { reason }) => {
                    self.forget_room(room)?;
                    return Err(ClientError::not_allowed(reason));
                }
                Err(e) => {
                    // Not known to be ordered: drop our half; joining again is safe.
                    self.forget_room(room)?;
                    return Err(e);
                }
            }
        }
        Err(ClientError::kept_changing(EPOCH_RETRIES))
    }
}
