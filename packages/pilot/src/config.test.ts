import { describe, expect, it } from '@jest/globals';
import { advertisedAddresses, pilotConfig } from './config.js';

describe('pilot config', () => {
  it('binds the admin/debug port to loopback unless told otherwise (it serves every sidecar config)', () => {
    expect(pilotConfig.parse({}).adminHost).toBe('127.0.0.1');
  });

  it('takes the CA settings together, naming the missing one', () => {
    const r = pilotConfig.safeParse({ caUrl: 'https://octo-ca.octo-system.svc:15016', caTrustBundleFile: '/etc/octo/ca/root-cert.pem', caTokenFile: '/var/run/secrets/octo/token' });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['tlsDir', expect.stringContaining('required with caUrl')]]);
    expect(pilotConfig.safeParse({ caUrl: 'http://octo-ca:15016', tlsDir: '/t', caTrustBundleFile: '/b', caTokenFile: '/k' }).error?.issues[0]?.path).toEqual(['caUrl']);
    expect(pilotConfig.parse({ caUrl: 'https://octo-ca:15016', tlsDir: '/t', caTrustBundleFile: '/b', caTokenFile: '/k', rolePrefix: 'prod-' })).toMatchObject({ caUrl: 'https://octo-ca:15016', rolePrefix: 'prod-' });
  });

  it.each([
    // [advertiseHost, xdsHost, adminHost, expected xds, expected admin]
    [undefined, '127.0.0.1', '127.0.0.1', '127.0.0.1:15010', '127.0.0.1:15014'],
    ['10.0.0.7', '0.0.0.0', '0.0.0.0', '10.0.0.7:15010', '10.0.0.7:15014'],
    // A loopback admin is advertised as loopback: the pod IP would name an address nobody can reach.
    ['10.0.0.7', '0.0.0.0', '127.0.0.1', '10.0.0.7:15010', '127.0.0.1:15014'],
    [undefined, '10.0.0.8', '::', '10.0.0.8:15010', '10.0.0.8:15014'],
    ['fd00::7', '::', '0.0.0.0', '[fd00::7]:15010', '[fd00::7]:15014'],
  ])('advertise %s, xds on %s, admin on %s → %s / %s', (advertiseHost, xdsHost, adminHost, xds, admin) => {
    expect(advertisedAddresses({ advertiseHost, xdsHost, adminHost }, 15010, 15014)).toEqual({ xds, admin });
  });
});
