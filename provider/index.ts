/**
 * The provider side of the package: what the serialized provider stubs in sdk/
 * require() at call time. One CRUD object per resource, plus `configure`.
 */
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
