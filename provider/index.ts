/**
 * The provider side of the package: what the `__provider` line the SDK writes into
 * state require()s at call time. One CRUD object per resource, plus `configure`.
 */
import type * as pulumi from "@pulumi/pulumi";
import { diskAttachment } from "./disk";
import { glusterVolume } from "./glusterVolume";
import { glusterPool } from "./pool";
import { imageVolume } from "./volume";
import { setPreviewChecks } from "./preview";
import { CONNECTION_CONFIG_KEYS, setConnectionDefaults } from "./ssh/settings";

/** Stack config namespace for default connection settings (`gluster-libvirt:privateKey`, …). */
export const CONFIG_NAMESPACE = "gluster-libvirt";

export const resources = {
  GlusterVolume: glusterVolume,
  GlusterPool: glusterPool,
  ImageVolume: imageVolume,
  DiskAttachment: diskAttachment,
};

/**
 * Called once per provider process with the stack's config (secrets decrypted):
 * default connection settings come from here, so keys never enter resource state.
 */
export function configure(config: { get(key: string): string | undefined }): void {
  setConnectionDefaults(Object.fromEntries(CONNECTION_CONFIG_KEYS.map((key) => [key, config.get(`${CONFIG_NAMESPACE}:${key}`)])));
  // `previewChecks: false`: a preview touches no host (README, "What preview checks").
  setPreviewChecks(config.get(`${CONFIG_NAMESPACE}:previewChecks`) !== "false");
}

/** The resource kinds, as the SDK names them in type tokens and `__provider`. */
export type ResourceKind = keyof typeof resources;

/**
 * The dynamic provider of `kind`, as the engine's provider process gets it from the
 * one line the SDK writes into state as `__provider` (sdk/provider.ts).
 */
export function providerFor(kind: ResourceKind): pulumi.dynamic.ResourceProvider {
  return { ...(resources[kind] as pulumi.dynamic.ResourceProvider), configure: async (req) => configure(req.config) };
}
