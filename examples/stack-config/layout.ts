import { z } from "zod";

// The storage layout as it is written in Pulumi.<stack>.yaml under `gluster-stack-config:layout`.
// Objects are strict: a misspelt key is an error, not silently ignored.

const name = z.string().regex(/^[A-Za-z0-9_.+-]{1,128}$/, "1-128 of A-Za-z0-9_.+-");
const size = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*(K|M|G|T|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$/, 'a size such as 1048576, "512MiB", "20GiB" or "100GB"'),
]);

const image = z.strictObject({
  /** virtual size; required unless `backing` is given */
  capacity: size.optional(),
  format: z.enum(["raw", "qcow2"]).optional(),
  /** another image of the same pool: this one becomes a qcow2 linked clone of it */
  backing: name.optional(),
});

const pool = z.strictObject({
  /** the Gluster volume */
  volume: z.string().min(1),
  servers: z.array(z.string().min(1)).min(1),
  type: z.enum(["netfs", "gluster"]).optional(),
  targetPath: z.string().startsWith("/").optional(),
  autostart: z.boolean().optional(),
  /** file name in the pool → image */
  images: z.record(name, image).default({}),
});

const disk = z.strictObject({
  /** `POOL/IMAGE`, both declared on the same host */
  image: z.string().regex(/^[^/]+\/[^/]+$/, "POOL/IMAGE"),
  access: z.enum(["auto", "gfapi", "fuse"]).optional(),
  bus: z.enum(["virtio", "scsi", "sata", "ide"]).optional(),
  readonly: z.boolean().optional(),
});

const host = z.strictObject({
  /** libvirt pool name → pool */
  pools: z.record(name, pool).default({}),
  /** VM (libvirt domain) → guest device (`sdb`, `vdc`, …) → disk */
  disks: z.record(z.string().min(1), z.record(z.string().regex(/^(vd|sd|hd)[a-z]+$/, "vdX, sdX or hdX"), disk)).default({}),
});

const layoutSchema = z
  .strictObject({
    /** hypervisor (SSH host name) → what it gets */
    hosts: z.record(z.string().min(1), host),
  })
  .superRefine((layout, ctx) => {
    // references must point at something declared, where it is declared
    for (const [hostName, h] of Object.entries(layout.hosts)) {
      for (const [poolName, p] of Object.entries(h.pools)) {
        for (const [imageName, img] of Object.entries(p.images)) {
          const at = ["hosts", hostName, "pools", poolName, "images", imageName];
          if (img.backing !== undefined && !(img.backing in p.images)) {
            ctx.addIssue({ code: "custom", path: [...at, "backing"], message: `no image '${img.backing}' in pool '${poolName}'` });
          }
          if (img.backing === undefined && img.capacity === undefined) {
            ctx.addIssue({ code: "custom", path: [...at, "capacity"], message: "required for an image without `backing`" });
          }
        }
      }
      for (const [vm, targets] of Object.entries(h.disks)) {
        for (const [target, d] of Object.entries(targets)) {
          const [poolName, imageName] = d.image.split("/");
          const p = h.pools[poolName];
          const problem = !p
            ? `no pool '${poolName}' on host '${hostName}'`
            : !(imageName in p.images)
              ? `no image '${imageName}' in pool '${poolName}'`
              : undefined;
          if (problem) ctx.addIssue({ code: "custom", path: ["hosts", hostName, "disks", vm, target, "image"], message: problem });
        }
      }
    }
  });

export type Layout = z.infer<typeof layoutSchema>;

/** `layout.hosts["kvm1.example.net"].pools.primary.images["vm1.img"].capacity` */
function yamlPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (s, k) => (typeof k === "number" ? `${s}[${k}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(String(k)) ? `${s}.${String(k)}` : `${s}[${JSON.stringify(String(k))}]`),
    root,
  );
}

/** Parses the config value; on failure, one line per problem, each naming its place in the YAML. */
export function parseLayout(configKey: string, value: unknown): Layout {
  const result = layoutSchema.safeParse(value);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `  ${yamlPath(configKey, i.path)}: ${i.message}`);
  throw new Error(`invalid stack config ${configKey}:\n${lines.join("\n")}`);
}
