# %% [markdown]
# # dyntrain from Python: the whole loop in a few cells
#
# Start a server first (`dyntrain serve`, or `make serve`), then run this file cell by cell in VS Code,
# PyCharm or Jupyter (`# %%` marks a cell), or all at once: `python examples/quickstart.py`.
# It points at `DYNTRAIN_URL` (default http://127.0.0.1:8000) with `DYNTRAIN_TOKEN` when the server
# asks for one. The photos are real: a dahlia and a pagoda cut out of the two photos scikit-learn
# ships (`dyntrain.ops.scenes`), pasted on real backgrounds, so nothing is downloaded.

# %%
import os

from dyntrain import Client
from dyntrain.ops.scenes import make_scene

client = Client()  # DYNTRAIN_URL / DYNTRAIN_TOKEN
name = os.environ.get("QUICKSTART_PROJECT", "quickstart")
# auto_train off: this notebook says when to train. The linear probe on EfficientNet-Lite0 is the
# fastest learner for photos; leave "learners" out to let dyntrain try every one that fits.
shop = client.project(name, create=True, settings={"auto_train": False, "learners": ["image.linear_probe"],
                                                    "time_budget_s": 10})
shop.info()["status"]

# %% [markdown]
# ## A few labelled photos
# Twelve scenes holding one object each: eight per class to learn from, the rest to try the model on.

# %%
photos = {"dahlia": [], "pagoda": []}
i = 0
while min(len(v) for v in photos.values()) < 10:
    scene = make_scene(i, classes=2, size=224, seed=0)
    i += 1
    if len(scene.boxes) == 1 and len(photos[scene.boxes[0]["label"]]) < 10:
        photos[scene.boxes[0]["label"]].append(scene.image)  # a NumPy array (HWC, uint8)

for label, images in photos.items():
    shop.add(images[:8], labels=label)  # arrays, PIL images, paths or bytes
[(c["label"], c["count"]) for c in shop.classes()]

# %% [markdown]
# ## Train and wait, with progress

# %%
def show(step):
    print(f"{step['stage']:<12} {step['percent']:5.1f}%")


run = shop.train(wait=True, progress=show)
print(f"run {run.id}: {run.learner}, accuracy {run.accuracy:.2f}, model version {run.model_version}, "
      f"{'in service' if run.promoted else 'kept back: ' + str(run.gate_reason)}")

# %% [markdown]
# ## Predict the held-out photos, and see why

# %%
held_out = [(label, image) for label, images in photos.items() for image in images[8:]]
predictions = shop.predict([image for _, image in held_out], explain="auto")
for (truth, _), p in zip(held_out, predictions):
    print(f"{truth:>7} -> {p.label:<7} {p.confidence:.0%}  {p.explanation['summary']}")

# %% [markdown]
# ## Per-class results of the run
# The holdout scores of each class, as the run recorded them.

# %%
for label, scores in run.per_class.items():
    print(f"{label:<8} precision {scores['precision']:.2f}  recall {scores['recall']:.2f}  f1 {scores['f1']:.2f}")

# %% [markdown]
# ## Correct a prediction, retrain, and roll back
# A correction added to the training data makes a new dataset version; the next run makes
# version 2. Rolling back serves version 1 again (and again, walking back, each time).

# %%
first = predictions[0]
shop.feedback(first, held_out[0][0], add_to_training=True)
second = shop.train(wait=True)
if not second.promoted:  # the gate kept it back: serve it by hand to have something to roll back
    shop.promote(second.model_version)
print("in service:", [m.version for m in shop.models() if m.in_service])
print("rolled back to version", shop.rollback()["production"])
shop.explain(first)["summary"]  # a recorded prediction, explained later by the version that answered it
