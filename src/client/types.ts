/**
 * This file was generated from openapi/openapi.json by scripts/write-client-types.ts
 * (npm run client:generate). Do not make direct changes to the file.
 */

import type { components } from './schema.js';

/** Each schema under its own name. */
export type AccessKey = components['schemas']['AccessKey'];
export type AuditEntry = components['schemas']['AuditEntry'];
export type BatchRequest = components['schemas']['BatchRequest'];
export type BatchResponse = components['schemas']['BatchResponse'];
export type BatchSecretEntry = components['schemas']['BatchSecretEntry'];
export type CreateAccessKeyRequest = components['schemas']['CreateAccessKeyRequest'];
export type CreateEnvironmentRequest = components['schemas']['CreateEnvironmentRequest'];
export type CreateSecretRequest = components['schemas']['CreateSecretRequest'];
export type CreateWebhookRequest = components['schemas']['CreateWebhookRequest'];
export type CreatedAccessKey = components['schemas']['CreatedAccessKey'];
export type CreatedWebhook = components['schemas']['CreatedWebhook'];
export type Environment = components['schemas']['Environment'];
export type EnvironmentComparison = components['schemas']['EnvironmentComparison'];
export type ErrorResponse = components['schemas']['ErrorResponse'];
export type ExportedSecrets = components['schemas']['ExportedSecrets'];
export type GenerateSpec = components['schemas']['GenerateSpec'];
export type PromoteRequest = components['schemas']['PromoteRequest'];
export type PromoteResponse = components['schemas']['PromoteResponse'];
export type RenderTemplateRequest = components['schemas']['RenderTemplateRequest'];
export type RenderTemplateResponse = components['schemas']['RenderTemplateResponse'];
export type RewrapRequest = components['schemas']['RewrapRequest'];
export type RollbackRequest = components['schemas']['RollbackRequest'];
export type RotatedWebhookSecret = components['schemas']['RotatedWebhookSecret'];
export type SecretMetadata = components['schemas']['SecretMetadata'];
export type SecretVersion = components['schemas']['SecretVersion'];
export type TokenExchangeRequest = components['schemas']['TokenExchangeRequest'];
export type TokenExchangeResponse = components['schemas']['TokenExchangeResponse'];
export type TrustPolicy = components['schemas']['TrustPolicy'];
export type TrustPolicyRequest = components['schemas']['TrustPolicyRequest'];
export type UpdateEnvironmentRequest = components['schemas']['UpdateEnvironmentRequest'];
export type UpdateSecretRequest = components['schemas']['UpdateSecretRequest'];
export type UpdateWebhookRequest = components['schemas']['UpdateWebhookRequest'];
export type Webhook = components['schemas']['Webhook'];
export type WebhookDelivery = components['schemas']['WebhookDelivery'];
export type WhoAmI = components['schemas']['WhoAmI'];

/** The names the client has always had for these schemas. */
export type ErrorBody = components['schemas']['ErrorResponse'];
export type BatchEntry = components['schemas']['BatchSecretEntryInput'];
export type TrustPolicyInput = components['schemas']['TrustPolicyRequest'];
export type WebhookInput = components['schemas']['CreateWebhookRequest'];
export type WebhookPatch = components['schemas']['UpdateWebhookRequest'];
