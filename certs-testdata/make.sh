#!/usr/bin/env bash
# Makes the operator-CA fixtures: a root and an intermediate CA (ECDSA P-256) for tests of
# `sds-agent run --ca-cert intermediate.pem --ca-key intermediate-key.pem --ca-chain root.pem`.
# Run once; the outputs are committed and byte-stable. Expiry: see README.md (rerun before then).
# Git does not keep file modes: tests copy the keys to 0600 files before use.
set -euo pipefail
cd "$(dirname "$0")"
days_root=7300   # 20 years
days_intermediate=5475   # 15 years

openssl ecparam -name prime256v1 -genkey -noout -out root-key.sec1
openssl pkcs8 -topk8 -nocrypt -in root-key.sec1 -out root-key.pem && rm root-key.sec1
openssl req -x509 -new -key root-key.pem -sha256 -days "$days_root" \
  -subj "/O=cluster.local/CN=sds-agent test root CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" \
  -out root.pem

openssl ecparam -name prime256v1 -genkey -noout -out intermediate-key.sec1
openssl pkcs8 -topk8 -nocrypt -in intermediate-key.sec1 -out intermediate-key.pem && rm intermediate-key.sec1
openssl req -new -key intermediate-key.pem -subj "/O=cluster.local/CN=sds-agent test intermediate CA" -out intermediate.csr
cat > intermediate.ext <<'EXT'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in intermediate.csr -CA root.pem -CAkey root-key.pem -CAcreateserial \
  -days "$days_intermediate" -sha256 -extfile intermediate.ext -out intermediate.pem
rm -f intermediate.csr intermediate.ext root.srl
openssl x509 -in root.pem -noout -enddate
openssl x509 -in intermediate.pem -noout -enddate
