"""The slice view and its parts: the view itself (:mod:`.slice_view`), its keys (:mod:`.keys`), its mouse
(:mod:`.mouse`), its corner text (:mod:`.corner_text`) and the AI heatmap layer (:mod:`.heat_layer`)."""
