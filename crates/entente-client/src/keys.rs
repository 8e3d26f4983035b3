//! KeyPackages: generation, upload and replenishment.

use entente_wire::api::{KeyPackageStatus, UploadKeyPackages};
use openmls::prelude::{Capabilities, CredentialWithKey, ExtensionType, KeyPackage};
use tls_codec::Serialize as _;

use crate::store::MlsProvider;
use crate::{Client, ClientError, KEY_PACKAGE_LOW_WATER, KEY_PACKAGE_TARGET};

impl Client {
    pub(crate) fn credential_with_key(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: entente_core::mls::credential_for(&self.cert),
            signature_key: self.signer.public().into(),
        }
    }

    fn new_key_package(&self, last_resort: bool) -> Result<Vec<u8>, ClientError> {
        let conn = self.db();
        let provider = MlsProvider::new(&self.crypto, &conn);
        // The last_resort extension must be announced in the leaf's capabilities.
        let mut b = KeyPackage::builder().leaf_node_capabilities(capabilities());
        if last_resort {
            b = b.mark_as_last_resort();
        }
        let bundle = b
            .build(
                entente_core::mls::CIPHERSUITE,
                &provider,
                &self.signer,
                self.credential_with_key(),
            )
            .map_err(|e| ClientError::Mls(format!("creating a KeyPackage: {e}")))?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(|e| ClientError::Bug(e.to_string()))
    }

    /// Tops up the single-use KeyPackages on the provider, and uploads a last-resort
    /// one if it has none. Returns how many are available afterwards.
    pub async fn replenish_key_packages(&mut self) -> Result<u64, ClientError> {
        let speaks_mls =
            crate::channel::load_identity(&self.db())?.is_none_or(|i| i.protocols.speaks_mls());
        if !speaks_mls {
            return Ok(0);
        }
        let status: KeyPackageStatus = self
            .signed::<(), _>(reqwest::Method::GET, "/v1/key-packages", None)
            .await?;
        if status.available >= KEY_PACKAGE_LOW_WATER && status.has_last_resort {
            return Ok(status.available);
        }
        let want = KEY_PACKAGE_TARGET.saturating_sub(status.available);
        let mut upload = UploadKeyPackages::default();
        for _ in 0..want {
            upload.key_packages.push(self.new_key_package(false)?);
        }
        if !status.has_last_resort {
            upload.last_resort = Some(self.new_key_package(true)?);
        }
        let status: KeyPackageStatus = self
            .signed(reqwest::Method::POST, "/v1/key-packages", Some(&upload))
            .await?;
        Ok(status.available)
    }
}

/// What our leaves announce: the last_resort KeyPackage extension (which must be
/// announced to be used) and the room state GroupContext extension.
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::builder()
        .extensions(vec![
            ExtensionType::LastResort,
            ExtensionType::Unknown(entente_core::room::ROOM_STATE_EXTENSION_TYPE),
        ])
        .build()
}
