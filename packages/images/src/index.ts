export { writeLayer, LAYER_MTIME, type LayerEntry } from './tar.js';
export { buildImage, staticBinaryImage, type BuiltImage, type ImageConfig, type ImageSpec } from './oci.js';
