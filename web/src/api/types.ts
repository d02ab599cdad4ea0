// Short names for the generated wire types that pages use.
import type { components } from './schema';

type Schemas = components['schemas'];

export type Me = Schemas['Me'];
export type Certificate = Schemas['Certificate'];
export type Owner = Schemas['Owner'];
export type AuditEvent = Schemas['AuditEvent'];
export type Managed = Schemas['Managed'];
export type IssuanceRequest = Schemas['Request'];
/** What a request or a managed certificate asks for (its `spec`). */
export type RequestSpec = Schemas['RequestSpec'];
export type AuthProvider = Schemas['AuthProvider'];
