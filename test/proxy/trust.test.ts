import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizeServerOptions } from '../../src/options.js';
import { parseCidr, TrustList } from '../../src/proxy/trust.js';

describe('parseCidr', () => {
  test('IPv4 and IPv6 blocks, and bare addresses as single hosts', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 'ipv4' });
    assert.deepEqual(parseCidr('192.168.1.7'), { address: '192.168.1.7', prefix: 32, family: 'ipv4' });
    assert.deepEqual(parseCidr('fd00::/8'), { address: 'fd00::', prefix: 8, family: 'ipv6' });
    assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
    assert.deepEqual(parseCidr('::ffff:0:0/96'), { address: '::ffff:0:0', prefix: 96, family: 'ipv6' });
  });

  test('refuses what is not a CIDR block', () => {
    for (const bad of [
      '',
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/',
      '10.0.0.0/08',
      '10.0.0.0/-1',
      '10.0.0/8',
      'localhost',
      '10.0.0.0/8/8',
      'fe80::1%eth0/64',
      ' 10.0.0.0/8',
      '01.0.0.0/8',
    ]) {
      assert.equal(parseCidr(bad), null, bad);
    }
  });
});

describe('TrustList', () => {
  const list = new TrustList([parseCidr('127.0.0.1/32')!, parseCidr('10.0.0.0/8')!, parseCidr('fd00::/8')!]);

  test('matches IPv4 peers against IPv4 blocks', () => {
    assert.equal(list.has('127.0.0.1'), true);
    assert.equal(list.has('127.0.0.2'), false);
    assert.equal(list.has('10.255.0.1'), true);
    assert.equal(list.has('11.0.0.1'), false);
  });

  test('matches IPv4-mapped IPv6 peers (dual-stack sockets) against IPv4 blocks', () => {
    assert.equal(list.has('::ffff:127.0.0.1'), true);
    assert.equal(list.has('::ffff:10.1.2.3'), true);
    assert.equal(list.has('::ffff:127.0.0.2'), false);
  });

  test('matches IPv6 peers against IPv6 blocks', () => {
    assert.equal(list.has('fd12:3456::1'), true);
    assert.equal(list.has('fe80::1'), false);
    assert.equal(list.has('::1'), false);
  });

  test('anything that is not an address is not trusted', () => {
    assert.equal(list.has(undefined), false);
    assert.equal(list.has(''), false);
    assert.equal(list.has('localhost'), false);
    assert.equal(list.has('fe80::1%eth0'), false);
  });
});

describe('server options: proxyProtocol, trustedProxies, proxyHeaderTimeout', () => {
  test('off by default, with no trusted proxies', () => {
    const o = normalizeServerOptions({});
    assert.equal(o.proxyProtocol, false);
    assert.deepEqual(o.trustedProxies, []);
    assert.equal(o.proxyHeaderTimeout, 5);
  });

  test('on: loopback is trusted by default', () => {
    assert.deepEqual(normalizeServerOptions({ proxyProtocol: true }).trustedProxies, ['127.0.0.0/8', '::1/128']);
  });

  test('an array or a comma-separated string, normalized to address/prefix', () => {
    assert.deepEqual(normalizeServerOptions({ proxyProtocol: true, trustedProxies: ['10.0.0.0/8', '::1'] }).trustedProxies, [
      '10.0.0.0/8',
      '::1/128',
    ]);
    assert.deepEqual(normalizeServerOptions({ proxyProtocol: true, trustedProxies: '10.0.0.0/8, 192.168.0.1' }).trustedProxies, [
      '10.0.0.0/8',
      '192.168.0.1/32',
    ]);
  });

  test('bad values name the option and the value', () => {
    assert.throws(() => normalizeServerOptions({ proxyProtocol: true, trustedProxies: '10.0.0.0/33' }), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: /`trustedProxies`.*got `10.0.0.0\/33`/,
    });
    assert.throws(() => normalizeServerOptions({ proxyProtocol: true, trustedProxies: [] }), { code: 'UPCASE_ERR_INVALID_ARG' });
    assert.throws(() => normalizeServerOptions({ proxyProtocol: true, trustedProxies: '' }), { code: 'UPCASE_ERR_INVALID_ARG' });
    assert.throws(() => normalizeServerOptions({ proxyProtocol: 'yes' as unknown as boolean }), {
      message: /`proxyProtocol` to be true or false/,
    });
    assert.throws(() => normalizeServerOptions({ proxyProtocol: true, proxyHeaderTimeout: 0 }), { message: /`proxyHeaderTimeout`/ });
  });

  test('trustedProxies without proxyProtocol is an error, not silently ignored', () => {
    assert.throws(() => normalizeServerOptions({ trustedProxies: '10.0.0.0/8' }), {
      code: 'UPCASE_ERR_INVALID_ARG',
      message: /`trustedProxies` to be used only with `proxyProtocol`, got `10\.0\.0\.0\/8`/,
    });
  });
});
