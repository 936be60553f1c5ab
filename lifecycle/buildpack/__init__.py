"""What the phases know about buildpacks themselves, shared by several phases: the Buildpack APIs
the lifecycle supports (:mod:`.api`) and how a buildpack's ``<layers>/<id>`` directory lists its
layers (:mod:`.layers_dir`). Below ``phases/``, so no phase imports another for these."""
