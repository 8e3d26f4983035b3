//! Notices from the provider's moderators (warnings) to this device's user.

use entente_wire::moderation::{
    AccountNotice, NOTICES_PATH, NOTICES_READ_PATH, Notices, ReadNotices,
};

use crate::{Client, ClientError};

impl Client {
    /// The notices the provider's moderators sent this user, oldest first, each
    /// saying whether one of the user's devices marked it read.
    pub async fn notices(&self) -> Result<Vec<AccountNotice>, ClientError> {
        let n: Notices = self
            .signed::<(), _>(reqwest::Method::GET, NOTICES_PATH, None)
            .await?;
        Ok(n.notices)
    }

    /// Marks the user's notices up to `up_to` (an id) read, for all their devices.
    pub async fn mark_notices_read(&self, up_to: u64) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .signed(
                reqwest::Method::POST,
                NOTICES_READ_PATH,
                Some(&ReadNotices { up_to }),
            )
            .await?;
        Ok(())
    }
}
