"""Teach styles: fine-tune the model in use on the user's own groups of images, from the app.

- :mod:`.groups`: what a group holds, what stops training, the seeded held-out split;
- :mod:`.groups_model`: the groups as a Qt table model;
- :mod:`.pipeline`: the run as trainer child processes (measure, fine-tune, export, measure);
- :mod:`.store`: the user's saved models and their cards;
- :mod:`.controller`: the session's work in workers, and keeping or discarding the model;
- :mod:`.dialog`: the dialog that shows it.
"""
