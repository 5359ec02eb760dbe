package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// OIDCConfig configures sign-in through an OpenID Connect provider (for
// example Keycloak) with the authorization code flow and PKCE.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer/.well-known/openid-configuration.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is the dashboard's callback URL as registered with the
	// provider.
	RedirectURL string
	// Scopes are requested besides openid; default profile and email.
	Scopes []string
	// HTTPClient makes the calls to the provider; default a client with a
	// 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// OIDC signs users in through an OpenID Connect provider. Discovery and
// the provider's keys are fetched when first needed and cached, so that the
// dashboard starts while the provider is down.
type OIDC struct {
	cfg OIDCConfig

	mu        sync.Mutex
	meta      *oidcMeta
	keys      map[string]crypto.PublicKey
	keysAt    time.Time
	keysFresh time.Duration
}

type oidcMeta struct {
	Issuer        string `json:"issuer"`
	AuthEndpoint  string `json:"authorization_endpoint"`
	TokenEndpoint string `json:"token_endpoint"`
	JWKSURI       string `json:"jwks_uri"`
}

// NewOIDC checks cfg and returns the client.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	for _, f := range []struct{ name, v string }{{"issuer", cfg.Issuer}, {"client id", cfg.ClientID}, {"redirect URL", cfg.RedirectURL}} {
		if f.v == "" {
			return nil, fmt.Errorf("oidc: %s is empty", f.name)
		}
	}
	for _, u := range []string{cfg.Issuer, cfg.RedirectURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return nil, fmt.Errorf("oidc: %q is not an http(s) URL", u)
		}
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email"}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	return &OIDC{cfg: cfg, keysFresh: time.Minute}, nil
}

// Issuer is the configured issuer.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

func (o *OIDC) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	return nil
}

func (o *OIDC) discover(ctx context.Context) (*oidcMeta, error) {
	o.mu.Lock()
	m := o.meta
	o.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m = &oidcMeta{}
	if err := o.getJSON(ctx, o.cfg.Issuer+"/.well-known/openid-configuration", m); err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	if strings.TrimRight(m.Issuer, "/") != o.cfg.Issuer {
		return nil, fmt.Errorf("oidc discovery: the provider names itself %q, configured is %q", m.Issuer, o.cfg.Issuer)
	}
	if m.AuthEndpoint == "" || m.TokenEndpoint == "" || m.JWKSURI == "" {
		return nil, errors.New("oidc discovery: authorization, token or JWKS endpoint missing")
	}
	o.mu.Lock()
	o.meta = m
	o.mu.Unlock()
	return m, nil
}

// PKCEChallenge is the S256 code challenge of verifier.
func PKCEChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthCodeURL returns the provider URL to send the user to, with state,
// nonce and the PKCE challenge of verifier.
func (o *OIDC) AuthCodeURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	m, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(m.AuthEndpoint)
	if err != nil {
		return "", fmt.Errorf("oidc: authorization endpoint: %w", err)
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", o.cfg.ClientID)
	q.Set("redirect_uri", o.cfg.RedirectURL)
	q.Set("scope", strings.Join(append([]string{"openid"}, o.cfg.Scopes...), " "))
	q.Set("state", state)
	q.Set("nonce", nonce)
	q.Set("code_challenge", PKCEChallenge(verifier))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Claims are the verified claims of an ID token.
type Claims struct {
	Issuer            string
	Subject           string
	Email             string
	Name              string
	PreferredUsername string
	// Raw holds every claim, for the role mapping.
	Raw map[string]any
}

// Strings returns the claim name as a list of strings: a string claim is
// one element, an array its string elements; a dotted name looks into
// objects (realm_access.roles).
func (c Claims) Strings(name string) []string {
	var v any = c.Raw
	for part := range strings.SplitSeq(name, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ErrOIDC wraps every refusal of a sign-in by OIDC.
var ErrOIDC = errors.New("sign-in through the identity provider failed")

// Exchange redeems an authorization code with the PKCE verifier and
// returns the verified claims of the ID token, whose nonce must be nonce.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce string) (Claims, error) {
	m, err := o.discover(ctx)
	if err != nil {
		return Claims{}, err
	}
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", o.cfg.RedirectURL)
	form.Set("code_verifier", verifier)
	form.Set("client_id", o.cfg.ClientID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Claims{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if o.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(o.cfg.ClientID), url.QueryEscape(o.cfg.ClientSecret))
	}
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: token endpoint: %v", ErrOIDC, err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
		Error   string `json:"error"`
		Desc    string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
		return Claims{}, fmt.Errorf("%w: token endpoint answered %s with no readable JSON", ErrOIDC, resp.Status)
	}
	if resp.StatusCode != http.StatusOK || tok.IDToken == "" {
		return Claims{}, fmt.Errorf("%w: token endpoint answered %s: %s %s", ErrOIDC, resp.Status, tok.Error, tok.Desc)
	}
	return o.VerifyIDToken(ctx, tok.IDToken, nonce)
}

// VerifyIDToken checks an ID token's signature against the provider's
// keys and its issuer, audience, times and nonce.
func (o *OIDC) VerifyIDToken(ctx context.Context, token, nonce string) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w: the ID token is not a JWS", ErrOIDC)
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return Claims{}, fmt.Errorf("%w: ID token header: %v", ErrOIDC, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: ID token signature: %v", ErrOIDC, err)
	}
	key, err := o.key(ctx, hdr.Kid)
	if err != nil {
		return Claims{}, err
	}
	if err := verifyJWS(hdr.Alg, key, []byte(parts[0]+"."+parts[1]), sig); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrOIDC, err)
	}
	raw := map[string]any{}
	if err := decodeSegment(parts[1], &raw); err != nil {
		return Claims{}, fmt.Errorf("%w: ID token claims: %v", ErrOIDC, err)
	}
	return o.checkClaims(raw, nonce)
}

func (o *OIDC) checkClaims(raw map[string]any, nonce string) (Claims, error) {
	str := func(k string) string { s, _ := raw[k].(string); return s }
	num := func(k string) (int64, bool) { f, ok := raw[k].(float64); return int64(f), ok }
	c := Claims{Issuer: str("iss"), Subject: str("sub"), Email: str("email"), Name: str("name"),
		PreferredUsername: str("preferred_username"), Raw: raw}
	now := o.cfg.Now().Unix()
	const leeway = 60
	var aud []string
	switch a := raw["aud"].(type) {
	case string:
		aud = []string{a}
	case []any:
		for _, e := range a {
			if s, ok := e.(string); ok {
				aud = append(aud, s)
			}
		}
	}
	exp, hasExp := num("exp")
	iat, hasIat := num("iat")
	switch {
	case strings.TrimRight(c.Issuer, "/") != o.cfg.Issuer:
		return Claims{}, fmt.Errorf("%w: ID token from issuer %q", ErrOIDC, c.Issuer)
	case !slices.Contains(aud, o.cfg.ClientID):
		return Claims{}, fmt.Errorf("%w: ID token not for this client", ErrOIDC)
	case len(aud) > 1 && str("azp") != "" && str("azp") != o.cfg.ClientID:
		return Claims{}, fmt.Errorf("%w: ID token issued to another party", ErrOIDC)
	case !hasExp || exp+leeway < now:
		return Claims{}, fmt.Errorf("%w: ID token expired", ErrOIDC)
	case hasIat && iat-leeway > now:
		return Claims{}, fmt.Errorf("%w: ID token issued in the future", ErrOIDC)
	case str("nonce") == "" || str("nonce") != nonce:
		return Claims{}, fmt.Errorf("%w: ID token nonce does not match the sign-in", ErrOIDC)
	case c.Subject == "":
		return Claims{}, fmt.Errorf("%w: ID token without subject", ErrOIDC)
	}
	return c, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// key returns the provider's key kid, fetching the key set when kid is
// unknown (at most once a minute).
func (o *OIDC) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	o.mu.Lock()
	k, ok := o.keys[kid]
	stale := o.cfg.Now().Sub(o.keysAt) >= o.keysFresh
	o.mu.Unlock()
	if ok {
		return k, nil
	}
	if !stale && o.keys != nil {
		return nil, fmt.Errorf("%w: unknown signing key %q", ErrOIDC, kid)
	}
	m, err := o.discover(ctx)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := o.getJSON(ctx, m.JWKSURI, &set); err != nil {
		return nil, fmt.Errorf("%w: signing keys: %v", ErrOIDC, err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		if pk, err := j.public(); err == nil {
			keys[j.Kid] = pk
		}
	}
	o.mu.Lock()
	o.keys, o.keysAt = keys, o.cfg.Now()
	o.mu.Unlock()
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	// A token without kid is fine when the provider has one key.
	if kid == "" && len(keys) == 1 {
		for _, k := range keys {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown signing key %q", ErrOIDC, kid)
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad number")
	}
	return new(big.Int).SetBytes(b), nil
}

func (j jwk) public() (crypto.PublicKey, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64int(j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64int(j.E)
		if err != nil || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return nil, errors.New("bad RSA exponent")
		}
		if n.BitLen() < 2048 {
			return nil, errors.New("RSA key under 2048 bits")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("curve %q", j.Crv)
		}
		x, err := b64int(j.X)
		if err != nil {
			return nil, err
		}
		y, err := b64int(j.Y)
		if err != nil {
			return nil, err
		}
		size := (curve.Params().BitSize + 7) / 8
		raw := make([]byte, 1+2*size)
		raw[0] = 4
		x.FillBytes(raw[1 : 1+size])
		y.FillBytes(raw[1+size:])
		return ecdsa.ParseUncompressedPublicKey(curve, raw)
	}
	return nil, fmt.Errorf("key type %q", j.Kty)
}

func verifyJWS(alg string, key crypto.PublicKey, signed, sig []byte) error {
	var h crypto.Hash
	switch alg {
	case "RS256", "ES256", "PS256":
		h = crypto.SHA256
	case "RS384", "ES384", "PS384":
		h = crypto.SHA384
	case "RS512", "PS512":
		h = crypto.SHA512
	default:
		return fmt.Errorf("ID token signed with %q; RS256/384/512, PS256/384/512, ES256 or ES384 needed", alg)
	}
	hh := h.New()
	hh.Write(signed)
	digest := hh.Sum(nil)
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg[:2] {
		case "RS":
			return rsa.VerifyPKCS1v15(k, h, digest, sig)
		case "PS":
			return rsa.VerifyPSS(k, h, digest, sig, nil)
		}
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if alg[:2] != "ES" || len(sig) != 2*size {
			break
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if ecdsa.Verify(k, digest, r, s) {
			return nil
		}
		return errors.New("ID token signature does not verify")
	}
	return fmt.Errorf("ID token algorithm %q does not fit the key", alg)
}
