//! Calico-style block IPAM: pools, blocks, affinities, handles.
