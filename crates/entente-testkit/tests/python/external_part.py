"""An independent implementation of MIMI ExternalPart file encryption, for interop
tests (crates/entente-testkit/tests/file_crypto_interop.rs): cbor2 for the content
format and the `cryptography` package's AES-GCM, nothing from Entente.

Commands:

  parse MESSAGE              parse the MIMI content message (CBOR) in MESSAGE, whose
                             body is one ExternalPart; print the part's fields as JSON
  decrypt MESSAGE BLOB OUT   parse the MIMI content message (CBOR) in MESSAGE, whose
                             body is one ExternalPart; check BLOB against its size and
                             contentHash, decrypt it with key, nonce and aad, check an
                             Entente commitment aad, write the plaintext to OUT; print
                             the part's fields as JSON
  encrypt KEYLEN PLAIN BLOB  encrypt PLAIN with a fresh key of KEYLEN bytes, a fresh
                             nonce and empty aad, write BLOB = ciphertext || tag; print
                             enc_alg, key, nonce and content_hash (hex) as JSON
  tamper BLOB INDEX          flip the low bit of byte INDEX of BLOB in place; print the
                             new sha-256 of BLOB (hex)

The layout follows draft-ietf-mimi-content's CDDL:

  mimiContent = [salt, replaces, topicId, expires, inReplyTo, mimiExtensions,
                 nestedPart]
  NestedPart  = [disposition, language, (... cardinality-specific ...)]
  ExternalPart = (cardinality: 2, contentType, url, expires, size, encAlg, key, nonce,
                  aad, hashAlg, contentHash, description, filename)
"""

import hashlib
import json
import os
import sys

import cbor2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# IANA AEAD registry: AEAD_AES_128_GCM, AEAD_AES_256_GCM, and their key lengths.
AEAD_KEY_LEN = {1: 16, 2: 32}
# IANA Named Information Hash Algorithm registry: sha-256.
SHA_256 = 1
EXTERNAL = 2
COMMITMENT_LABEL = b"entente-file-commit-v1"


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def parse_external_part(message):
    content = cbor2.loads(message)
    expect(isinstance(content, list) and len(content) == 7,
           "mimiContent must be an array of 7")
    salt, replaces, topic_id, expires, in_reply_to, extensions, body = content
    expect(isinstance(salt, bytes) and len(salt) == 16, "salt: bstr .size 16")
    expect(replaces is None and in_reply_to is None, "no replaces or inReplyTo")
    expect(isinstance(topic_id, bytes), "topicId: bstr")
    expect(expires is None, "expires: null")
    expect(isinstance(extensions, dict), "mimiExtensions: map")
    expect(isinstance(body, list) and len(body) == 15,
           "a NestedPart holding an ExternalPart is an array of 15")
    (disposition, language, cardinality, content_type, url, part_expires, size,
     enc_alg, key, nonce, aad, hash_alg, content_hash, description,
     filename) = body
    expect(cardinality == EXTERNAL, "cardinality: external (2)")
    for name, value, kind in [
        ("disposition", disposition, int), ("language", language, str),
        ("contentType", content_type, str), ("url", url, str),
        ("expires", part_expires, int), ("size", size, int),
        ("encAlg", enc_alg, int), ("key", key, bytes), ("nonce", nonce, bytes),
        ("aad", aad, bytes), ("hashAlg", hash_alg, int),
        ("contentHash", content_hash, bytes), ("description", description, str),
        ("filename", filename, str),
    ]:
        expect(isinstance(value, kind), f"{name}: expected {kind.__name__}")
    return {
        "disposition": disposition, "language": language,
        "content_type": content_type, "url": url, "expires": part_expires,
        "size": size, "enc_alg": enc_alg, "key": key, "nonce": nonce, "aad": aad,
        "hash_alg": hash_alg, "content_hash": content_hash,
        "description": description, "filename": filename,
    }


def as_json(part):
    return json.dumps({k: (v.hex() if isinstance(v, bytes) else v) for k, v in part.items()})


def parse(message_path):
    with open(message_path, "rb") as f:
        print(as_json(parse_external_part(f.read())))


def decrypt(message_path, blob_path, out_path):
    with open(message_path, "rb") as f:
        part = parse_external_part(f.read())
    with open(blob_path, "rb") as f:
        blob = f.read()
    expect(part["size"] == len(blob), f"size {part['size']} != {len(blob)} bytes")
    expect(part["hash_alg"] == SHA_256, "hashAlg: sha-256 (1)")
    expect(hashlib.sha256(blob).digest() == part["content_hash"],
           "contentHash does not match the blob")
    expect(AEAD_KEY_LEN.get(part["enc_alg"]) == len(part["key"]),
           f"encAlg {part['enc_alg']} with a {len(part['key'])}-byte key")
    plaintext = AESGCM(part["key"]).decrypt(part["nonce"], blob, part["aad"])
    committed = (part["aad"].startswith(COMMITMENT_LABEL)
                 and len(part["aad"]) == len(COMMITMENT_LABEL) + 32)
    if committed:
        expect(hashlib.sha256(plaintext).digest() == part["aad"][len(COMMITMENT_LABEL):],
               "the plaintext does not match the commitment in aad")
    with open(out_path, "wb") as f:
        f.write(plaintext)
    part["committed"] = committed
    print(as_json(part))


def encrypt(key_len, plain_path, blob_path):
    enc_alg = {v: k for k, v in AEAD_KEY_LEN.items()}[key_len]
    key = AESGCM.generate_key(bit_length=8 * key_len)
    nonce = os.urandom(12)
    with open(plain_path, "rb") as f:
        plaintext = f.read()
    blob = AESGCM(key).encrypt(nonce, plaintext, b"")
    with open(blob_path, "wb") as f:
        f.write(blob)
    print(json.dumps({
        "enc_alg": enc_alg, "key": key.hex(), "nonce": nonce.hex(),
        "content_hash": hashlib.sha256(blob).hexdigest(),
    }))


def tamper(blob_path, index):
    with open(blob_path, "rb") as f:
        blob = bytearray(f.read())
    blob[index] ^= 1
    with open(blob_path, "wb") as f:
        f.write(blob)
    print(hashlib.sha256(blob).hexdigest())


def main(args):
    if args[:1] == ["parse"] and len(args) == 2:
        parse(args[1])
    elif args[:1] == ["decrypt"] and len(args) == 4:
        decrypt(*args[1:])
    elif args[:1] == ["encrypt"] and len(args) == 4:
        encrypt(int(args[1]), args[2], args[3])
    elif args[:1] == ["tamper"] and len(args) == 3:
        tamper(args[1], int(args[2]))
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
