"""Models: shapes for every variant and task, the seed's Net1/Net2, init-from-static, bad input."""
import pytest
import torch

from dynlab import layers
from dynlab.models import (init_dynamic_from_static, net1_dcnn, net2_dcnn, resnet18, segmentation_model,
                           tsresnet)

VARIANTS = layers.names()


@pytest.mark.parametrize("variant", VARIANTS)
def test_resnet18_small_stem_trains_one_step(variant):
    torch.manual_seed(0)
    model = resnet18(variant, num_classes=7, stem="small", width=8)
    x = torch.randn(4, 3, 16, 16)
    logits = model(x)
    assert logits.shape == (4, 7)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])) + layers.auxiliary_loss(model)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("variant", VARIANTS)
def test_resnet18_1d_and_timeseries(variant):
    torch.manual_seed(0)
    assert resnet18(variant, 5, dim=1, in_channels=1, width=8)(torch.randn(2, 1, 64)).shape == (2, 5)
    assert tsresnet(variant, 37, channels=(8, 16, 16))(torch.randn(2, 1, 176)).shape == (2, 37)


@pytest.mark.parametrize("variant", ["base", "local", "odconv4x"])
def test_segmentation_logits_at_input_size(variant):
    torch.manual_seed(0)
    model = segmentation_model(variant, num_classes=6, width=8)
    assert model(torch.randn(2, 3, 40, 48)).shape == (2, 6, 40, 48)


def test_segmentation_backbone_has_output_stride_16():
    model = segmentation_model("base", num_classes=3, width=8)
    assert model.backbone.features(torch.randn(1, 3, 64, 64)).shape[-2:] == (4, 4)


def test_segmentation_at_output_stride_8_has_an_8x8_map_and_a_head_of_its_width():
    model = segmentation_model("base", num_classes=3, width=8, output_stride=8, head_channels=16, atrous_rates=(1, 2, 4))
    assert model.backbone.features(torch.randn(1, 3, 64, 64)).shape[-2:] == (8, 8)
    assert max(m.out_channels for m in model.head.modules() if isinstance(m, torch.nn.Conv2d)) == 16
    assert [m.dilation[0] for m in model.head[0].modules() if isinstance(m, torch.nn.Conv2d) and m.dilation[0] > 1] \
        == [2, 4]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="output_stride must be one of 32, 16, 8, 4"):
        segmentation_model("base", num_classes=3, width=8, output_stride=12)


def test_the_head_with_its_defaults_is_torchvisions_deeplab_head():
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    from dynlab.models.segmentation import deeplab_head

    torch.manual_seed(0)
    theirs = DeepLabHead(32, 5)
    torch.manual_seed(0)
    ours = deeplab_head(32, 5)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))


def test_dilated_stages_keep_the_map_and_follow_torchvision():
    torchvision = pytest.importorskip("torchvision")
    ours = resnet18("base", 10, width=64, dilate=2)
    theirs = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True])
    assert ours.features(torch.randn(1, 3, 64, 64)).shape[-2:] == (8, 8)
    dilations = lambda m, stage: [c.dilation[0] for c in getattr(m, stage).modules()  # noqa: E731
                                  if hasattr(c, "dilation") and tuple(c.kernel_size) == (3, 3)]
    # torchvision's first block of a dilated stage keeps the previous dilation, the others the new one
    assert dilations(ours, "layer3") == [1, 1, 2, 2] and dilations(theirs, "layer3")[:1] == [1]
    assert dilations(ours, "layer4") == [2, 2, 4, 4] and dilations(theirs, "layer4")[:1] == [2]
    with pytest.raises(ValueError, match="dilate"):
        resnet18("base", 10, dilate=4)


def test_resnet18_matches_torchvision_layout():
    torchvision = pytest.importorskip("torchvision")
    ours = resnet18("base", 1000)
    theirs = torchvision.models.resnet18()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), theirs(x))


def test_local_representation_is_reset_between_forwards():
    torch.manual_seed(0)
    model = resnet18("local", 3, stem="small", width=8).eval()
    a, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    alone = model(b)
    model(a)
    torch.testing.assert_close(model(b), alone)


def test_seed_cnns_and_init_from_static():
    torch.manual_seed(0)
    for factory in (net1_dcnn, net2_dcnn):
        static, dynamic = factory("base"), factory("dyconv")
        x = torch.randn(3, 1, 176)
        assert static(x).shape == dynamic(x).shape == (3, 37)
        init_dynamic_from_static(dynamic, static, noise=0.0, freeze=True)
        static.eval(), dynamic.eval()
        # identical kernels: the mixture equals the static kernel whatever the attention
        torch.testing.assert_close(dynamic(x), static(x), rtol=1e-4, atol=1e-5)
        frozen = [m.weight for m in dynamic.modules() if isinstance(m, layers.DynamicConv)]
        assert frozen and not any(w.requires_grad for w in frozen)


def test_init_from_static_adds_noise_per_kernel():
    static, dynamic = net1_dcnn("base"), net1_dcnn("dyconv")
    init_dynamic_from_static(dynamic, static, noise=0.01, freeze=False, seed=0)
    unit = dynamic.features[0]
    assert unit.weight.requires_grad
    assert not torch.equal(unit.weight[0], unit.weight[1])
    assert torch.allclose(unit.weight[0], static.features[0].weight, atol=0.1 * float(static.features[0].weight.detach().std()))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: resnet18("nope", 10), "valid variants"),
        (lambda: resnet18("dyconv", 10, colour="red"), "valid options"),
        (lambda: resnet18("base", 10, dim=3), "dim must be"),
        (lambda: resnet18("base", 10, stem="tiny"), "stem must be"),
        (lambda: net1_dcnn("odconv"), "static"),
    ],
)
def test_bad_arguments_are_refused_clearly(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_wrong_input_rank_is_refused_clearly():
    with pytest.raises(ValueError, match="expects input"):
        resnet18("base", 10, stem="small", width=8)(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match="expects series"):
        tsresnet("base", 5)(torch.randn(2, 176))
