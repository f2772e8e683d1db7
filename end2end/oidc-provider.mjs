// A real OpenID Connect provider for the tests (npm oidc-provider): discovery, signing keys, the
// authorization code flow with PKCE, its own login page (any password; the login is the
// person's `sub`), RP-initiated logout. Its clients and people come from a JSON file, read again
// at each lookup so that a test may add people while it runs:
//
//   { "clients": [{ "client_id", "client_secret", "redirect_uris": [...] }],
//     "accounts": { "<sub>": { "preferred_username", "name", "email", "groups": [...] } } }
//
// Usage: node end2end/oidc-provider.mjs <port> <file> [--claims-in-userinfo] [--tls <cert> <key>]
//        [--listening-stdin].
// With --claims-in-userinfo the ID token says only who the person is (`sub`), and the rest
// comes from the userinfo endpoint, as many providers do; with --tls it serves HTTPS with that
// certificate. With --listening-stdin its standard input is a socket already listening on
// <port> (a caller that holds the port from the start, so nothing else takes it), else it binds
// <port> itself. Prints "ready <issuer>" once it listens.
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { Provider } from 'oidc-provider';

const port = Number(process.argv[2]);
const file = process.argv[3];
const options = process.argv.slice(4);
const claimsInUserinfo = options.includes('--claims-in-userinfo');
const tls = options.includes('--tls') ? options.slice(options.indexOf('--tls') + 1, options.indexOf('--tls') + 3) : null;
const read = () => JSON.parse(readFileSync(file, 'utf8'));
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const key = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: read().clients.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // By default the claims of the scopes asked for go into the ID token itself.
  conformIdTokenClaims: claimsInUserinfo,
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['director test provider cookie key'] },
  jwks: { keys: [key] },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
  // No consent page: a person who signed in grants what the client asks.
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  async findAccount(ctx, sub) {
    const account = read().accounts[sub];
    if (!account) return undefined;
    return { accountId: sub, async claims() { return { sub, email_verified: true, ...account }; } };
  },
});

const handle = provider.callback();
const server = tls
  ? createTlsServer({ cert: readFileSync(tls[0]), key: readFileSync(tls[1]) }, handle)
  : createServer(handle);
const ready = () => console.log(`ready ${issuer}`);
if (options.includes('--listening-stdin')) server.listen({ fd: 0 }, ready);
else server.listen(port, '127.0.0.1', ready);
