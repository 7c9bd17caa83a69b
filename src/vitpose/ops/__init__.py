"""Array operations with no model in them (numpy, OpenCV, torch tensors): geometry (box -> centre/scale, the UDP
warp, crops), the heatmap codec (encode, decode, flip), OKS and pose NMS."""
