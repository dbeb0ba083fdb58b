package facts

// ViewsAnnotation switches the views per pod or container: "off" opts out
// (the NRI plugin reads it on the pod, `corral create` on the bundle),
// "on" opts in where the plugin runs with --opt-in.
const ViewsAnnotation = "corral.dev/views"
