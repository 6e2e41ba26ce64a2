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



def _block_reference(block, x, position):
    """A BasicBlock's forward written out, with its post-block attention before or after the residual add."""
    identity = x if block.downsample is None else block.downsample(x)
    out = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    if position == "before_add":
        return torch.relu(block.attention(out) + identity)
    return torch.relu(block.attention(out + identity))


@pytest.mark.parametrize("position", ["before_add", "after_add"])
def test_attention_position_places_se_before_or_after_the_residual_add(position):
    torch.manual_seed(0)
    model = resnet18("global", 10, stem="small", width=8, attention_position=position).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        features = model.relu(model.bn1(model.conv1(x)))
        for block in (model.layer1[0], model.layer2[0]):  # an identity shortcut, then a 1x1 downsample
            assert block.attention_position == position
            torch.testing.assert_close(block(features), _block_reference(block, features, position))
            other = "after_add" if position == "before_add" else "before_add"
            assert not torch.allclose(block(features), _block_reference(block, features, other))
            features = block(features)


def test_attention_position_default_is_before_add_and_changes_no_weight():
    torch.manual_seed(0)
    default = resnet18("global", 10, stem="small", width=8).eval()
    torch.manual_seed(0)
    explicit = resnet18("global", 10, stem="small", width=8, attention_position="before_add").eval()
    after = resnet18("global", 10, stem="small", width=8, attention_position="after_add").eval()
    blocks = [m for m in default.modules() if hasattr(m, "attention_position")]
    assert len(blocks) == 8 and {b.attention_position for b in blocks} == {"before_add"}
    assert [(n, p.shape) for n, p in default.state_dict().items()] == \
        [(n, p.shape) for n, p in after.state_dict().items()]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(default(x), explicit(x))
        after.load_state_dict(default.state_dict())
        assert not torch.allclose(default(x), after(x))


def _attention_forced_to_one(model):
    for module in model.modules():
        if isinstance(module, layers.SqueezeExcite):
            torch.nn.init.zeros_(module.excite.weight)
            torch.nn.init.constant_(module.excite.bias, 100.0)  # sigmoid(100) == 1 in float32
    return model


@pytest.mark.parametrize("build, shape", [
    (lambda position: resnet18("global", 10, stem="small", width=8, attention_position=position), (2, 3, 16, 16)),
    (lambda position: tsresnet("global", 5, channels=(8, 16, 16), attention_position=position), (2, 1, 64)),
    (lambda position: segmentation_model("global", 4, width=8, attention_position=position), (2, 3, 32, 32)),
])
def test_with_the_attention_at_one_both_positions_give_the_same_output(build, shape):
    torch.manual_seed(0)
    before, after = build("before_add").eval(), build("after_add").eval()
    after.load_state_dict(before.state_dict())
    x = torch.randn(shape)
    with torch.no_grad():
        assert not torch.allclose(before(x), after(x))  # with SE's own weights the position matters
        _attention_forced_to_one(before)
        after.load_state_dict(before.state_dict())
        torch.testing.assert_close(before(x), after(x))


@pytest.mark.parametrize("make", [
    lambda: resnet18("global", 10, attention_position="after"),
    lambda: tsresnet("global", 5, attention_position="post"),
    lambda: segmentation_model("global", 4, width=8, attention_position=None),
])
def test_a_bad_attention_position_is_refused_in_one_line(make):
    with pytest.raises(ValueError, match="attention_position must be 'before_add' .* or 'after_add'") as error:
        make()
    assert "\n" not in str(error.value)
