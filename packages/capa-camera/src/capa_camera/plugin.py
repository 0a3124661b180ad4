"""Entry point of the ``camera`` capa plugin (``[project.entry-points.capa] camera``).

The plugin host imports this module and collects the components its hook implementations
return. This distribution will provide the `camera.opencv` adapter (device index, video
file, MJPEG/RTSP URL, `sim://` test pattern); none of those components exists yet, so
the plugin registers nothing and ``capa plugins list`` shows it loaded with no
components.
"""
