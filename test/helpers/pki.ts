/**
 * A throwaway PKI for the TLS tests, made with the openssl CLI in a temp dir
 * (no network): a private CA, server certificates signed by it (good, a second
 * one for reload tests, wrong name, expired), and an unrelated CA. EC P-256
 * keys keep it fast. Nothing reads the system's openssl.cnf.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that signed the server certificates. */
  ca: string;
  /** A CA that signed nothing here. */
  otherCa: string;
  /** CN=localhost, SAN DNS:localhost and IP:127.0.0.1, serial 1001. */
  server: KeyPair;
  /** The same names, another key, serial 2002 (for reloads). */
  server2: KeyPair;
  /** SAN DNS:other.example only. */
  wrongName: KeyPair;
  /** The right names, valid only in January 2020. */
  expired: KeyPair;
  /** Paths in `dir` for a file name. */
  path(name: string): string;
  remove(): void;
}

const REQ_CONFIG = `
[ req ]
distinguished_name = dn
[ dn ]
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

function serverExtensions(san: string): string {
  return `
[ server ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${san}
`;
}

/** openssl ca needs a database; this one exists only to back-date one certificate. */
function caConfig(dir: string): string {
  return `
[ ca ]
default_ca = test_ca
[ test_ca ]
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
certificate = ${dir}/ca.pem
private_key = ${dir}/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
`;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

function newKey(dir: string, name: string): string {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  return join(dir, `${name}.key`);
}

function newCa(dir: string, name: string, cn: string): void {
  newKey(dir, name);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-config',
      'req.cnf',
      '-extensions',
      'v3_ca',
      '-key',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '30',
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

function csr(dir: string, name: string): void {
  newKey(dir, name);
  openssl(['req', '-new', '-config', 'req.cnf', '-key', `${name}.key`, '-subj', '/CN=localhost', '-out', `${name}.csr`], dir);
}

function signed(dir: string, name: string, san: string, serial: string): KeyPair {
  csr(dir, name);
  writeFileSync(join(dir, `${name}.ext`), serverExtensions(san));
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      serial,
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
      '-extensions',
      'server',
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

const GOOD_NAMES = 'DNS:localhost, IP:127.0.0.1';

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'upcase-tls-'));
  writeFileSync(join(dir, 'req.cnf'), REQ_CONFIG);
  newCa(dir, 'ca', 'upcase test CA');
  newCa(dir, 'other-ca', 'someone else');
  const server = signed(dir, 'server', GOOD_NAMES, '0x1001');
  const server2 = signed(dir, 'server2', GOOD_NAMES, '0x2002');
  const wrongName = signed(dir, 'wrong-name', 'DNS:other.example', '0x3003');

  // x509 -days cannot reach into the past; `openssl ca` takes explicit dates.
  csr(dir, 'expired');
  writeFileSync(join(dir, 'expired.ext'), serverExtensions(GOOD_NAMES));
  writeFileSync(join(dir, 'ca.cnf'), caConfig(dir));
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '4004\n');
  mkdirSync(join(dir, 'newcerts'));
  openssl(
    [
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-in',
      'expired.csr',
      '-out',
      'expired.pem',
      '-notext',
      '-startdate',
      '20200101000000Z',
      '-enddate',
      '20200201000000Z',
      '-extfile',
      'expired.ext',
      '-extensions',
      'server',
    ],
    dir,
  );

  return {
    dir,
    ca: join(dir, 'ca.pem'),
    otherCa: join(dir, 'other-ca.pem'),
    server,
    server2,
    wrongName,
    expired: { cert: join(dir, 'expired.pem'), key: join(dir, 'expired.key') },
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
