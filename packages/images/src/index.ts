export { writeLayer, LAYER_MTIME, type LayerEntry } from './tar.js';
export { buildImage, prepareLayer, staticBinaryImage, type PreparedLayer, type BuiltImage, type ImageConfig, type ImageSpec } from './oci.js';
export { buildMeshImages, bundleApp, CONTROL_PLANE_APPS, SIDECAR_APPS, type MeshImageOptions } from './mesh.js';
export { runtimeLayer, lddPaths, NONROOT } from './runtime-layer.js';
