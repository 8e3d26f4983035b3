//! Groups of Signal-channel peers: sender keys, or plain pairwise fan-out.
//!
//! Such a group is a list of users kept by each member (as in Signal's first
//! group design), changed by control frames sent pairwise to every member.
//!
//! - **Pairwise fan-out** encrypts each message once per recipient device on the
//!   pairwise sessions: simple, and every message gets the Double Ratchet's
//!   forward secrecy and post-compromise security, at a cost linear in the group.
//! - **Sender keys** (Signal and WhatsApp groups): each member sends its own
//!   sender key (a hash chain and a signing key) once to every member over the
//!   pairwise sessions, then encrypts each message once. Forward secrecy comes
//!   from the hash chain; there is no post-compromise security until the sender
//!   makes a new sender key, which every member does when someone is removed, so
//!   the removed member cannot read what follows.
//!
//! Every copy is sealed per device, as for two-party messages.

use entente_core::signal::sender_keys::SenderKeyRecord;
use entente_wire::content::MimiContent;
use entente_wire::ids::{ClientId, UserId};
use rand::RngCore as _;
use rand::rngs::OsRng;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{
    Conversation, DirectEntry, FRAME_GROUP_CONTROL, FRAME_GROUP_MESSAGE, FRAME_SENDER_KEY, Opened,
    Payload, in_transaction, insert_history, now_ms, pad, received_entry, unpad,
};
use crate::rooms::Event;
use crate::store::storage;
use crate::{Client, ClientError, now_secs};

/// How a group of Signal-channel peers encrypts its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupMechanism {
    SenderKeys,
    Pairwise,
}

impl GroupMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupMechanism::SenderKeys => "sender-keys",
            GroupMechanism::Pairwise => "pairwise",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ClientError> {
        match s {
            "sender-keys" => Ok(GroupMechanism::SenderKeys),
            "pairwise" => Ok(GroupMechanism::Pairwise),
            other => Err(ClientError::Usage(format!(
                "unknown group mechanism {other:?}: use sender-keys or pairwise"
            ))),
        }
    }
}

/// A group of Signal-channel peers, as this device knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectGroup {
    pub id: [u8; 16],
    pub name: String,
    pub mechanism: GroupMechanism,
    pub members: Vec<UserId>,
}

/// The control frame's body (after the group id): JSON, inside the ratchet.
#[derive(Serialize, Deserialize)]
struct GroupControl {
    name: String,
    mechanism: String,
    members: Vec<String>,
}

fn load_group(conn: &Connection, id: &[u8; 16]) -> Result<Option<DirectGroup>, ClientError> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT name, mechanism, members FROM signal_groups WHERE group_id = ?1",
            params![id.as_slice()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(storage)?;
    let Some((name, mechanism, members)) = row else {
        return Ok(None);
    };
    let members: Vec<String> =
        serde_json::from_str(&members).map_err(|e| ClientError::Storage(e.to_string()))?;
    Ok(Some(DirectGroup {
        id: *id,
        name,
        mechanism: GroupMechanism::parse(&mechanism)?,
        members: parse_members(&members).map_err(|e| ClientError::Storage(e.to_string()))?,
    }))
}

fn parse_members(members: &[String]) -> Result<Vec<UserId>, ClientError> {
    let mut out: Vec<UserId> = Vec::with_capacity(members.len());
    for m in members {
        let u: UserId = UserId::parse_uri(m)
            .or_else(|_| m.parse())
            .map_err(|e| ClientError::Protocol(format!("group member {m}: {e}")))?;
        if !out.contains(&u) {
            out.push(u);
        }
    }
    if out.len() > 2000 {
        return Err(ClientError::Protocol(
            "group of more than 2,000 members".into(),
        ));
    }
    Ok(out)
}

fn save_group(conn: &Connection, g: &DirectGroup) -> Result<(), ClientError> {
    let members: Vec<String> = g.members.iter().map(ToString::to_string).collect();
    conn.execute(
        "INSERT INTO signal_groups (group_id, name, mechanism, members, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (group_id) DO UPDATE SET name = excluded.name, members = excluded.members",
        params![
            g.id.as_slice(),
            g.name,
            g.mechanism.as_str(),
            serde_json::to_string(&members).map_err(|e| ClientError::Bug(e.to_string()))?,
            now_secs() as i64
        ],
    )
    .map_err(storage)?;
    Ok(())
}

fn control_frame(g: &DirectGroup) -> Result<Vec<u8>, ClientError> {
    let mut frame = vec![FRAME_GROUP_CONTROL];
    frame.extend_from_slice(&g.id);
    frame.extend(
        serde_json::to_vec(&GroupControl {
            name: g.name.clone(),
            mechanism: g.mechanism.as_str().into(),
            members: g.members.iter().map(ToString::to_string).collect(),
        })
        .map_err(|e| ClientError::Bug(e.to_string()))?,
    );
    Ok(frame)
}

fn load_sender_key(
    conn: &Connection,
    group: &[u8; 16],
    sender: &str,
) -> Result<Option<SenderKeyRecord>, ClientError> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT record FROM signal_sender_keys WHERE group_id = ?1 AND sender_client = ?2",
            params![group.as_slice(), sender],
            |r| r.get(0),
        )
        .optional()
        .map_err(storage)?;
    bytes
        .map(|b| {
            SenderKeyRecord::from_bytes(&b)
                .map_err(|e| ClientError::Storage(format!("sender key of {sender}: {e}")))
        })
        .transpose()
}

fn save_sender_key(
    conn: &Connection,
    group: &[u8; 16],
    sender: &str,
    record: &SenderKeyRecord,
) -> Result<(), ClientError> {
    conn.execute(
        "INSERT OR REPLACE INTO signal_sender_keys (group_id, sender_client, distribution_id, record)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            group.as_slice(),
            sender,
            record.distribution_id().as_slice(),
            record.to_bytes().as_slice()
        ],
    )
    .map_err(storage)?;
    Ok(())
}

/// Applies a group frame received over a pairwise session.
pub(crate) fn apply_group_frame(
    conn: &Connection,
    sender: &ClientId,
    kind: u8,
    body: &[u8],
) -> Result<Option<Event>, ClientError> {
    let (id, rest) = body
        .split_first_chunk::<16>()
        .ok_or_else(|| ClientError::Protocol("group frame without a group id".into()))?;
    let known = load_group(conn, id)?;
    let sender_user = sender.user();
    let is_member = |g: &DirectGroup| g.members.iter().any(|m| m == sender_user);
    match kind {
        FRAME_GROUP_CONTROL => {
            let control: GroupControl = serde_json::from_slice(rest)
                .map_err(|e| ClientError::Protocol(format!("group control: {e}")))?;
            let members = parse_members(&control.members)?;
            let mechanism = GroupMechanism::parse(&control.mechanism)?;
            if let Some(g) = &known {
                if !is_member(g) {
                    return Err(ClientError::Untrusted(format!(
                        "{sender} changed a group it is not a member of"
                    )));
                }
                if g.mechanism != mechanism {
                    return Err(ClientError::Protocol(
                        "a group's mechanism cannot change".into(),
                    ));
                }
            } else if !members.contains(sender_user) {
                return Err(ClientError::Protocol(format!(
                    "{sender} created a group it is not a member of"
                )));
            }
            let group = DirectGroup {
                id: *id,
                name: control.name.chars().take(200).collect(),
                mechanism,
                members,
            };
            if let Some(old) = &known {
                let removed: Vec<&UserId> = old
                    .members
                    .iter()
                    .filter(|m| !group.members.contains(m))
                    .collect();
                if !removed.is_empty() {
                    // Everyone's next message goes under a new sender key, which
                    // the removed members never get.
                    conn.execute(
                        "DELETE FROM signal_sender_keys WHERE group_id = ?1",
                        params![id.as_slice()],
                    )
                    .map_err(storage)?;
                    conn.execute(
                        "DELETE FROM signal_sender_key_sent WHERE group_id = ?1",
                        params![id.as_slice()],
                    )
                    .map_err(storage)?;
                }
            }
            save_group(conn, &group)?;
            Ok(Some(Event::DirectGroupChanged {
                group: group.id,
                name: group.name,
                members: group.members,
            }))
        }
        FRAME_SENDER_KEY => {
            let Some(g) = known.filter(is_member) else {
                return Err(ClientError::Protocol(format!(
                    "{sender} sent a sender key for a group we do not share"
                )));
            };
            let record = SenderKeyRecord::from_distribution_message(rest)
                .map_err(|e| ClientError::Protocol(format!("sender key from {sender}: {e}")))?;
            save_sender_key(conn, &g.id, &sender.to_string(), &record)?;
            Ok(None)
        }
        FRAME_GROUP_MESSAGE => {
            let Some(g) = known.filter(is_member) else {
                return Err(ClientError::Protocol(format!(
                    "{sender} sent a message to a group we do not share"
                )));
            };
            let entry = received_entry(Conversation::Group(g.id), sender, rest)?;
            Ok(insert_history(conn, &entry)?.then_some(Event::Direct(entry)))
        }
        other => Err(ClientError::Bug(format!("not a group frame: {other}"))),
    }
}

/// Opens a sender-key message from `sender` with the sender keys we hold for it.
pub(crate) fn open_sender_key_message(
    conn: &Connection,
    sender: &ClientId,
    bytes: &[u8],
) -> Result<Opened, ClientError> {
    let groups: Vec<Vec<u8>> = {
        let mut stmt = conn
            .prepare("SELECT group_id FROM signal_sender_keys WHERE sender_client = ?1")
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![sender.to_string()], |r| r.get(0))
            .map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)?
    };
    let mut last_error = None;
    for gid in groups {
        let Ok(gid) = <[u8; 16]>::try_from(gid.as_slice()) else {
            continue;
        };
        let Some(mut record) = load_sender_key(conn, &gid, &sender.to_string())? else {
            continue;
        };
        match record.decrypt(bytes) {
            Ok(padded) => {
                save_sender_key(conn, &gid, &sender.to_string(), &record)?;
                let frame = unpad(&padded)?;
                let (&kind, body) = frame
                    .split_first()
                    .ok_or_else(|| ClientError::Protocol("empty frame".into()))?;
                if kind != FRAME_GROUP_MESSAGE || body.get(..16) != Some(gid.as_slice()) {
                    return Err(ClientError::Protocol(
                        "a sender-key message must carry a message of its own group".into(),
                    ));
                }
                return apply_group_frame(conn, sender, kind, body).map(|e| match e {
                    Some(e) => Opened::Event(Box::new(e)),
                    None => Opened::Nothing,
                });
            }
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    Err(ClientError::Protocol(format!(
        "a sender-key message from {sender} that no sender key we hold opens{}",
        last_error.map(|e| format!(" ({e})")).unwrap_or_default()
    )))
}

impl Client {
    /// Groups of Signal-channel peers this device is in.
    pub fn direct_groups(&self) -> Result<Vec<DirectGroup>, ClientError> {
        let local = self.db();
        let ids: Vec<Vec<u8>> = {
            let mut stmt = local
                .prepare("SELECT group_id FROM signal_groups ORDER BY created_at, group_id")
                .map_err(storage)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(storage)?;
            rows.collect::<Result<_, _>>().map_err(storage)?
        };
        let mut out = Vec::new();
        for id in ids {
            if let Ok(id) = <[u8; 16]>::try_from(id.as_slice())
                && let Some(g) = load_group(&local, &id)?
            {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// One group by id (or a unique hex prefix of it).
    pub fn direct_group(&self, id_or_prefix: &str) -> Result<DirectGroup, ClientError> {
        let wanted = id_or_prefix.to_ascii_lowercase();
        let found: Vec<DirectGroup> = self
            .direct_groups()?
            .into_iter()
            .filter(|g| hex::encode(g.id).starts_with(&wanted))
            .collect();
        match found.len() {
            1 => found
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Bug("group vanished".into())),
            0 => Err(ClientError::Usage(format!(
                "no group {id_or_prefix}; `entente group list` shows yours"
            ))),
            _ => Err(ClientError::Usage(format!(
                "{id_or_prefix} matches several groups; give more of the id"
            ))),
        }
    }

    /// Creates a group of Signal-channel peers and tells every member.
    pub async fn create_direct_group(
        &self,
        name: &str,
        members: &[UserId],
        mechanism: GroupMechanism,
    ) -> Result<DirectGroup, ClientError> {
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let mut all = vec![self.user().clone()];
        for m in members {
            if !all.contains(m) {
                all.push(m.clone());
            }
        }
        let group = DirectGroup {
            id,
            name: name.to_owned(),
            mechanism,
            members: all,
        };
        crate::blocking(|| save_group(&self.db(), &group))?;
        self.announce(&group, &group.members).await?;
        Ok(group)
    }

    /// Adds a member: every member (the newcomer included) gets the new list.
    pub async fn add_direct_group_member(
        &self,
        group: &[u8; 16],
        user: &UserId,
    ) -> Result<DirectGroup, ClientError> {
        let mut g = self.require_direct_group(group)?;
        if g.members.contains(user) {
            return Err(ClientError::Usage(format!(
                "{} is a member already",
                user.handle()
            )));
        }
        g.members.push(user.clone());
        crate::blocking(|| save_group(&self.db(), &g))?;
        self.announce(&g, &g.members).await?;
        Ok(g)
    }

    /// Removes a member. With sender keys, every remaining member (us first)
    /// makes a new sender key for what follows, which the removed one never gets.
    pub async fn remove_direct_group_member(
        &self,
        group: &[u8; 16],
        user: &UserId,
    ) -> Result<DirectGroup, ClientError> {
        let mut g = self.require_direct_group(group)?;
        if !g.members.contains(user) {
            return Err(ClientError::Usage(format!(
                "{} is not a member",
                user.handle()
            )));
        }
        let mut told = g.members.clone();
        g.members.retain(|m| m != user);
        crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                save_group(conn, &g)?;
                conn.execute(
                    "DELETE FROM signal_sender_keys WHERE group_id = ?1",
                    params![group.as_slice()],
                )
                .map_err(storage)?;
                conn.execute(
                    "DELETE FROM signal_sender_key_sent WHERE group_id = ?1",
                    params![group.as_slice()],
                )
                .map_err(storage)?;
                Ok(())
            })
        })?;
        // The removed member learns of it too.
        told.retain(|m| m != self.user());
        self.announce(&g, &told).await?;
        Ok(g)
    }

    fn require_direct_group(&self, group: &[u8; 16]) -> Result<DirectGroup, ClientError> {
        let g = load_group(&self.db(), group)?
            .ok_or_else(|| ClientError::Usage(format!("no group {}", hex::encode(group))))?;
        if !g.members.contains(self.user()) {
            return Err(ClientError::Usage(
                "you are not a member of that group".into(),
            ));
        }
        Ok(g)
    }

    async fn announce(&self, g: &DirectGroup, to: &[UserId]) -> Result<(), ClientError> {
        let frame = control_frame(g)?;
        for m in to {
            if m != self.user() {
                self.send_frame(m, &frame, None).await?;
            }
        }
        Ok(())
    }

    /// Sends a text message to a group of Signal-channel peers.
    pub async fn send_group_text(
        &self,
        group: &[u8; 16],
        text: &str,
    ) -> Result<[u8; 32], ClientError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        self.send_group_content(group, &MimiContent::text(text, false, salt))
            .await
    }

    /// Sends MIMI content to a group, by its mechanism.
    pub async fn send_group_content(
        &self,
        group: &[u8; 16],
        content: &MimiContent,
    ) -> Result<[u8; 32], ClientError> {
        let g = self.require_direct_group(group)?;
        let conversation = Conversation::Group(g.id);
        let bytes = content.encode();
        let message_id = *content
            .message_id(&self.user().to_string(), &conversation.message_id_scope())
            .map_err(|e| ClientError::Bug(format!("message id: {e}")))?
            .as_bytes();
        let mut frame = vec![FRAME_GROUP_MESSAGE];
        frame.extend_from_slice(&g.id);
        frame.extend_from_slice(&bytes);
        let entry = DirectEntry {
            conversation,
            sender: self.user().clone(),
            sender_client: self.id.clone(),
            message_id,
            timestamp_ms: now_ms(),
            text: content.display_text().map(|t| t.text.to_owned()),
            content: bytes,
            outgoing: true,
        };
        let others: Vec<UserId> = g
            .members
            .iter()
            .filter(|m| *m != self.user())
            .cloned()
            .collect();
        match g.mechanism {
            GroupMechanism::Pairwise => {
                crate::blocking(|| {
                    let local = self.db();
                    in_transaction(&local, |conn| insert_history(conn, &entry).map(|_| ()))
                })?;
                for m in &others {
                    self.send_frame(m, &frame, None).await?;
                }
            }
            GroupMechanism::SenderKeys => {
                self.send_with_sender_key(&g, &others, &frame, &entry)
                    .await?;
            }
        }
        Ok(message_id)
    }

    async fn send_with_sender_key(
        &self,
        g: &DirectGroup,
        others: &[UserId],
        frame: &[u8],
        entry: &DirectEntry,
    ) -> Result<(), ClientError> {
        let me = self.id.to_string();
        // Our sender key for the group (a new one after a removal).
        let (distribution, distribution_id) = crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                let record = match load_sender_key(conn, &g.id, &me)? {
                    Some(r) => r,
                    None => {
                        let mut did = [0u8; 16];
                        OsRng.fill_bytes(&mut did);
                        let (r, _) = SenderKeyRecord::create(did, &mut OsRng);
                        save_sender_key(conn, &g.id, &me, &r)?;
                        r
                    }
                };
                let dm = record
                    .distribution_message()
                    .map_err(|e| ClientError::Bug(format!("sender key: {e}")))?;
                Ok((dm, record.distribution_id()))
            })
        })?;
        // Members that have not had it get it over the pairwise sessions.
        let mut sk_frame = vec![FRAME_SENDER_KEY];
        sk_frame.extend_from_slice(&g.id);
        sk_frame.extend_from_slice(&distribution);
        let mut devices = Vec::with_capacity(others.len());
        for m in others {
            let sent: bool = self
                .db()
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM signal_sender_key_sent
                     WHERE group_id = ?1 AND distribution_id = ?2 AND peer_client = ?3)",
                    params![g.id.as_slice(), distribution_id.as_slice(), m.to_string()],
                    |r| r.get(0),
                )
                .map_err(storage)?;
            if !sent {
                self.send_frame(m, &sk_frame, None).await?;
                self.db()
                    .execute(
                        "INSERT OR IGNORE INTO signal_sender_key_sent (group_id, distribution_id, peer_client)
                         VALUES (?1, ?2, ?3)",
                        params![g.id.as_slice(), distribution_id.as_slice(), m.to_string()],
                    )
                    .map_err(storage)?;
            }
            devices.push((m.clone(), self.ensure_sessions(m, None).await?));
        }
        // One encryption; one sealed copy per device.
        let cert = self.sender_certificate().await?;
        let outbox = crate::blocking(|| {
            let local = self.db();
            in_transaction(&local, |conn| {
                let mut record = load_sender_key(conn, &g.id, &me)?
                    .ok_or_else(|| ClientError::Bug("our sender key vanished".into()))?;
                let message = record
                    .encrypt(&pad(frame), &mut OsRng)
                    .map_err(|e| ClientError::Bug(format!("sender key encryption: {e}")))?;
                save_sender_key(conn, &g.id, &me, &record)?;
                insert_history(conn, entry)?;
                let mut ids = Vec::new();
                for (user, devs) in &devices {
                    ids.push(self.seal_for(
                        conn,
                        user,
                        devs,
                        &Payload::SenderKey(&message),
                        &cert,
                        frame,
                    )?);
                }
                Ok(ids)
            })
        })?;
        for id in outbox {
            self.deliver_direct(id).await?;
        }
        Ok(())
    }
}
