"""A Signal peer we did not write, for signal_ratchet_interop.rs: python-omemo's `oldmemo`.

oldmemo is the OMEMO 0.3 (`eu.siacs.conversations.axolotl`) backend of python-omemo, the
OMEMO version built on libsignal: its OMEMOKeyExchange is libsignal's version 3
PreKeySignalMessage and its OMEMOAuthenticatedMessage is a SignalMessage
(0x33 || protobuf || 8-byte truncated HMAC), made by the `doubleratchet` and `x3dh`
packages configured with libsignal's parameters. It interoperates with libsignal-based
OMEMO clients (Conversations, Dino, ...).

This script drives oldmemo's own backend (`oldmemo.Oldmemo`: X3DH state, session
building, Double Ratchet, AEAD, protobuf serialisation) and its XML bundle code
(`oldmemo.etree`), unmodified. The only glue is what python-omemo's SessionManager would
otherwise do around the backend: an in-memory Storage, loading and storing the session
around each operation, attaching the key exchange to outgoing messages until the session
is confirmed, reusing a session that the same key exchange built, and deleting a one-time
prekey once used. OMEMO's message payload (AES-GCM under the key material) is not used:
the Double Ratchet plaintext is OMEMO's "key material" (`key || auth_tag`), any bytes,
which we fill with the test's plaintext.

Protocol: one JSON object per line on stdin, one answer per line on stdout. Byte strings
are hex; public keys are libsignal's 33-byte `0x05 || u`.

  {"op": "new", "opk": N, "device_id": D}   (forgets everything before)
      -> {"identity_key", "registration_id" (= D, the OMEMO device id), "signed_prekey_id",
          "signed_prekey", "signed_prekey_signature", "one_time_prekeys": [[id, key]]}
      A fresh identity and bundle, as oldmemo publishes it.
  {"op": "peer", "bundle": {same fields}}
      The other side's published bundle (what OMEMO fetches from the sender's PEP node):
      its identity key is checked against key exchanges and gives the Ed25519 sign bit.
  {"op": "initiate", "bundle": {...}, "plaintext": hex}
      -> {"kind": "prekey", "message": hex, "one_time_prekey_id": id}
      Builds a session from the peer's bundle (oldmemo sends its first message with it).
  {"op": "encrypt", "plaintext": hex} -> {"kind": "prekey" | "whisper", "message": hex}
  {"op": "decrypt", "kind": "prekey" | "whisper", "message": hex}
      -> {"plaintext": hex} or {"error": innermost exception type, "chain": [...], "detail"}
  {"op": "session"} -> {"confirmed", "initiation", "sending_chain_length",
                        "receiving_chain_length"}
  {"op": "x3dh_active", "bundle": {...}}
      -> {"shared_secret", "associated_data", "ephemeral_key", "one_time_prekey_id"}
      oldmemo's X3DH state as initiator, without a session (to compare with ours).
  {"op": "x3dh_passive", "identity_key", "ephemeral_key", "signed_prekey_id",
   "one_time_prekey_id"} -> {"shared_secret", "associated_data"}
"""

import asyncio
import base64
import json
import sys
import traceback
import xml.etree.ElementTree as ET

import oldmemo
import oldmemo.etree
import x3dh
import xeddsa
from omemo.session import Initiation
from omemo.storage import Just, Maybe, Nothing, Storage
from oldmemo.oldmemo import (
    NAMESPACE,
    EncryptedKeyMaterialImpl,
    KeyExchangeImpl,
    PlainKeyMaterialImpl,
    StateImpl,
)

OWN_JID = "python@entente.test"
PEER_JID = "rust@entente.test"
PEER_DEVICE = 1
NS = oldmemo.etree.NS


class MemoryStorage(Storage):
    """python-omemo's key/value storage, in memory."""

    def __init__(self):
        super().__init__()
        self.values = {}

    async def _load(self, key: str) -> Maybe:
        return Just(self.values[key]) if key in self.values else Nothing()

    async def _store(self, key: str, value) -> None:
        self.values[key] = value

    async def _delete(self, key: str) -> None:
        self.values.pop(key, None)


def split_key_material(plaintext: bytes) -> PlainKeyMaterialImpl:
    """Any bytes as oldmemo's key material, whose serialisation is `key || auth_tag`."""
    n = PlainKeyMaterialImpl.KEY_LENGTH
    return PlainKeyMaterialImpl(plaintext[:n], plaintext[n:])


def bundle_xml(bundle) -> ET.Element:
    """Our bundle (JSON) as the OMEMO 0.3 <bundle/> element that oldmemo.etree parses."""

    def b64(hex_string):
        return base64.b64encode(bytes.fromhex(hex_string)).decode("ascii")

    element = ET.Element(f"{NS}bundle")
    ET.SubElement(
        element,
        f"{NS}signedPreKeyPublic",
        attrib={"signedPreKeyId": str(bundle["signed_prekey_id"])},
    ).text = b64(bundle["signed_prekey"])
    ET.SubElement(element, f"{NS}signedPreKeySignature").text = b64(
        bundle["signed_prekey_signature"]
    )
    ET.SubElement(element, f"{NS}identityKey").text = b64(bundle["identity_key"])
    prekeys = ET.SubElement(element, f"{NS}prekeys")
    for prekey_id, public in bundle["one_time_prekeys"]:
        ET.SubElement(
            prekeys, f"{NS}preKeyPublic", attrib={"preKeyId": str(prekey_id)}
        ).text = b64(public)
    return element


class Peer:
    def __init__(self):
        self.storage = MemoryStorage()
        self.backend = oldmemo.Oldmemo(self.storage)
        self.device_id = None
        self.peer_bundle = None

    # Bundles and X3DH

    async def new(self, request):
        self.device_id = int(request.get("device_id", 7))
        await self.backend.generate_pre_keys(int(request["opk"]))
        bundle = await self.backend.get_bundle(OWN_JID, self.device_id)
        # Serialised by oldmemo itself: the Ed25519 sign bit of the identity key goes into
        # the top bit of the signature, as libsignal's signatures carry it.
        element = oldmemo.etree.serialize_bundle(bundle)

        def text(name):
            return base64.b64decode(element.find(f"{NS}{name}").text).hex()

        spk = element.find(f"{NS}signedPreKeyPublic")
        return {
            "identity_key": text("identityKey"),
            "registration_id": self.device_id,
            "signed_prekey_id": int(spk.get("signedPreKeyId")),
            "signed_prekey": base64.b64decode(spk.text).hex(),
            "signed_prekey_signature": text("signedPreKeySignature"),
            "one_time_prekeys": [
                [int(e.get("preKeyId")), base64.b64decode(e.text).hex()]
                for e in element.iter(f"{NS}preKeyPublic")
            ],
        }

    async def peer(self, request):
        self.peer_bundle = oldmemo.etree.parse_bundle(
            bundle_xml(request["bundle"]), PEER_JID, PEER_DEVICE
        )
        return {}

    async def x3dh_state(self) -> StateImpl:
        # Loaded exactly as Oldmemo's private __get_state does.
        serialized = (await self.storage.load(f"/{NAMESPACE}/x3dh")).from_just()
        state, _ = StateImpl.from_json(
            serialized,
            x3dh.IdentityKeyFormat.ED_25519,
            x3dh.HashFunction.SHA_256,
            StateImpl.INFO,
        )
        return state

    async def x3dh_active(self, request):
        bundle = oldmemo.etree.parse_bundle(
            bundle_xml(request["bundle"]), PEER_JID, PEER_DEVICE
        )
        state = await self.x3dh_state()
        shared_secret, associated_data, header = await state.get_shared_secret_active(
            bundle.bundle
        )
        return {
            "shared_secret": shared_secret.hex(),
            "associated_data": associated_data.hex(),
            "ephemeral_key": StateImpl.serialize_public_key(header.ephemeral_key).hex(),
            "one_time_prekey_id": bundle.pre_key_ids[header.pre_key],
        }

    async def x3dh_passive(self, request):
        own = await self.backend.get_bundle(OWN_JID, self.device_id)
        prekeys = {i: k for k, i in own.pre_key_ids.items()}
        assert request["signed_prekey_id"] == own.signed_pre_key_id
        identity = StateImpl.parse_public_key(bytes.fromhex(request["identity_key"]))
        header = x3dh.Header(
            # The sign bit only matters for signatures, which X3DH does not check here.
            xeddsa.curve25519_pub_to_ed25519_pub(identity, False),
            StateImpl.parse_public_key(bytes.fromhex(request["ephemeral_key"])),
            own.bundle.signed_pre_key,
            prekeys[request["one_time_prekey_id"]],
        )
        state = await self.x3dh_state()
        shared_secret, associated_data, _ = await state.get_shared_secret_passive(header)
        return {
            "shared_secret": shared_secret.hex(),
            "associated_data": associated_data.hex(),
        }

    # Sessions

    async def initiate(self, request):
        bundle = oldmemo.etree.parse_bundle(
            bundle_xml(request["bundle"]), PEER_JID, PEER_DEVICE
        )
        self.peer_bundle = bundle
        session, encrypted = await self.backend.build_session_active(
            PEER_JID,
            PEER_DEVICE,
            bundle,
            split_key_material(bytes.fromhex(request["plaintext"])),
        )
        await self.backend.store_session(session)
        message, _ = session.key_exchange.serialize(encrypted.serialize())
        return {
            "kind": "prekey",
            "message": message.hex(),
            "one_time_prekey_id": session.key_exchange.pre_key_id,
        }

    async def encrypt(self, request):
        session = await self.backend.load_session(PEER_JID, PEER_DEVICE)
        encrypted = await self.backend.encrypt_key_material(
            session, split_key_material(bytes.fromhex(request["plaintext"]))
        )
        await self.backend.store_session(session)
        authenticated = encrypted.serialize()
        # As SessionManager: the key exchange rides along until the peer has answered.
        if session.initiation is Initiation.ACTIVE and not session.confirmed:
            message, _ = session.key_exchange.serialize(authenticated)
            return {"kind": "prekey", "message": message.hex()}
        return {"kind": "whisper", "message": authenticated.hex()}

    async def decrypt(self, request):
        data = bytes.fromhex(request["message"])
        if request["kind"] == "prekey":
            # The sign bit comes from the sender's published bundle, as in etree.parse_message.
            sign_bit = bool((self.peer_bundle.identity_key[31] >> 7) & 1)
            key_exchange, authenticated = KeyExchangeImpl.parse(data, sign_bit)
        else:
            key_exchange, authenticated = None, data
        encrypted = EncryptedKeyMaterialImpl.parse(authenticated, PEER_JID, PEER_DEVICE)

        session = await self.backend.load_session(PEER_JID, PEER_DEVICE)
        built = False
        if key_exchange is not None:
            # SessionManager.handle_key_exchange.
            if key_exchange.identity_key != self.peer_bundle.identity_key:
                raise ValueError("the key exchange's identity key is not the peer's")
            if session is not None and not (
                session.initiation is Initiation.PASSIVE
                and session.key_exchange.builds_same_session(key_exchange)
            ):
                session = None
            if session is None:
                session, material = await self.backend.build_session_passive(
                    PEER_JID, PEER_DEVICE, key_exchange, encrypted
                )
                built = True
        elif session is None:
            raise ValueError("no session and no key exchange")
        if not built:
            material = await self.backend.decrypt_key_material(session, encrypted)
        await self.backend.store_session(session)
        if key_exchange is not None:
            await self.backend.delete_pre_key(session)
        return {"plaintext": (material.key + material.auth_tag).hex()}

    async def session(self, request):
        session = await self.backend.load_session(PEER_JID, PEER_DEVICE)
        return {
            "confirmed": session.confirmed,
            "initiation": session.initiation.name,
            "sending_chain_length": session.sending_chain_length,
            "receiving_chain_length": session.receiving_chain_length,
        }


def exception_chain(error: BaseException):
    """The error and its explicit causes (`raise ... from`), outermost first."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.__cause__
    return chain


async def main():
    peer = Peer()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request["op"] == "new":
            peer = Peer()
        try:
            answer = await getattr(peer, request["op"])(request)
        except Exception as error:  # the test asserts on which one
            chain = exception_chain(error)
            answer = {
                "error": type(chain[-1]).__name__,
                "chain": [type(e).__name__ for e in chain],
                "detail": "; ".join(str(e) for e in chain),
                "traceback": traceback.format_exc(),
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
