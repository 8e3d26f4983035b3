"""XEdDSA and X25519 by implementations we did not write, for signal_interop.rs.

python-xeddsa (libxeddsa, Syndace) signs and verifies; `cryptography` (OpenSSL)
computes X25519. Reads a JSON request on stdin, writes the answers as JSON:

  {"sign":   [{"private": hex, "message": hex, "nonce": hex}],
   "verify": [{"public": hex, "message": hex, "signature": hex}],
   "x25519": [{"private": hex, "public": hex}]}
->
  {"sign":   [{"signature": hex, "public": hex}],
   "verify": [bool],
   "x25519": [{"cryptography": hex, "xeddsa": hex, "public": hex}]}

Private keys come clamped (libxeddsa signs with the scalar as given).
"""

import json
import sys

import xeddsa
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)


def x25519_public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def sign(case):
    private = bytes.fromhex(case["private"])
    # XEdDSA's calculate_key_pair: the Edwards key must have sign bit 0.
    forced = xeddsa.priv_force_sign(private, False)
    signature = xeddsa.ed25519_priv_sign(
        forced, bytes.fromhex(case["message"]), bytes.fromhex(case["nonce"])
    )
    return {"signature": signature.hex(), "public": x25519_public(private).hex()}


def verify(case):
    edwards = xeddsa.curve25519_pub_to_ed25519_pub(bytes.fromhex(case["public"]), False)
    return xeddsa.ed25519_verify(
        bytes.fromhex(case["signature"]), edwards, bytes.fromhex(case["message"])
    )


def x25519(case):
    private = bytes.fromhex(case["private"])
    public = bytes.fromhex(case["public"])
    ours = X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(public)
    )
    return {
        "cryptography": ours.hex(),
        "xeddsa": xeddsa.x25519(private, public).hex(),
        "public": x25519_public(private).hex(),
    }


def main():
    request = json.load(sys.stdin)
    json.dump(
        {
            "sign": [sign(case) for case in request.get("sign", [])],
            "verify": [verify(case) for case in request.get("verify", [])],
            "x25519": [x25519(case) for case in request.get("x25519", [])],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
