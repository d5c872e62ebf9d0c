//! What the hub keeps of the objects it caches.

use ocm_api::kube::Resource;

/// Drops an object's managed fields. The hub never reads them from a cache, and they are often
/// larger than the rest of the object: most of a cached ManagedCluster's memory was its managed
/// fields, one entry per field manager that wrote it.
pub fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}
