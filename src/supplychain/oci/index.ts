// The OCI distribution client and image references.
export { parseImageReference, ReferenceError, type ImageReference } from './reference.js';
export { CredentialStore, normalizeHost, parseChallenge, type Credential } from './auth.js';
export { MEDIA_TYPES, RegistryClient, RegistryError, sha256Digest, type Descriptor, type FetchedManifest, type Manifest, type RegistryClientOptions, type RegistryErrorCode, type RequestScope } from './client.js';
