"""The stdlib catalog: `list_models` as timm's (lists of patterns, exclude, pretrained), the
generic networks apart, every network's paper checked against a table written here."""
from __future__ import annotations

import subprocess
import sys

import pytest

import resdsl
from resdsl.catalog import generic, index, paper
from resdsl.elaborate import Program

R = ("Deep Residual Learning for Image Recognition", 2015, "1512.03385")
WRN = ("Wide Residual Networks", 2016, "1605.07146")
RNX = ("Aggregated Residual Transformations for Deep Neural Networks", 2016, "1611.05431")
PRE = ("Identity Mappings in Deep Residual Networks", 2016, "1603.05027")
DN = ("Densely Connected Convolutional Networks", 2016, "1608.06993")
VIT = ("An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", 2020, "2010.11929")
# network -> (title, year of the first arXiv version, arXiv id): written from the papers
PAPERS = {
    **dict.fromkeys(["ResNet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "CifarResNet",
                     "resnet20_cifar", "resnet56_cifar", "resnet110_cifar", "resnet1202_cifar"], R),
    **dict.fromkeys(["wide_resnet50_2", "wide_resnet101_2", "wrn_28_10"], WRN),
    **dict.fromkeys(["resnext50_32x4d", "resnext101_32x8d", "ResNeXtCifar", "resnext29_8x64d"], RNX),
    **dict.fromkeys(["PreActResNet", "preact_resnet164", "preact_resnet1001", "ResNetV2", "resnetv2_50",
                     "resnetv2_101"], PRE),
    **dict.fromkeys(["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201", "DenseNetBC",
                     "densenet_bc_100_12"], DN),
    **dict.fromkeys(["VisionTransformer", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"], VIT),
    "stochastic_depth_resnet110": ("Deep Networks with Stochastic Depth", 2016, "1603.09382"),
    **dict.fromkeys(["PyramidNet", "pyramidnet110_a48"], ("Deep Pyramidal Residual Networks", 2016, "1610.02915")),
    **dict.fromkeys(["SwinTransformer", "swin_t", "swin_s", "swin_b"],
                    ("Swin Transformer: Hierarchical Vision Transformer using Shifted Windows", 2021, "2103.14030")),
    **dict.fromkeys(["swin_v2_t", "swin_v2_s", "swin_v2_b"],
                    ("Swin Transformer V2: Scaling Up Capacity and Resolution", 2021, "2111.09883")),
    **dict.fromkeys(["MaxVit", "maxvit_t"], ("MaxViT: Multi-Axis Vision Transformer", 2022, "2204.01697")),
    **dict.fromkeys(["ConvNeXt", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large"],
                    ("A ConvNet for the 2020s", 2022, "2201.03545")),
    **dict.fromkeys(["DnCNN", "dncnn"], ("Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image "
                                         "Denoising", 2016, "1608.03981")),
    **dict.fromkeys(["DPN", "dpn68", "dpn92", "dpn98", "dpn131"], ("Dual Path Networks", 2017, "1707.01629")),
    **dict.fromkeys(["EDSR", "edsr_baseline_x2", "edsr_x2"],
                    ("Enhanced Deep Residual Networks for Single Image Super-Resolution", 2017, "1707.02921")),
    **dict.fromkeys(["RCAN", "rcan"], ("Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
                                       2018, "1807.02758")),
    **dict.fromkeys(["EfficientNetV2", "efficientnet_v2_s"],
                    ("EfficientNetV2: Smaller Models and Faster Training", 2021, "2104.00298")),
    **dict.fromkeys(["FractalNet", "fractalnet"],
                    ("FractalNet: Ultra-Deep Neural Networks without Residuals", 2016, "1605.07648")),
    **dict.fromkeys(["GNMTEncoder", "gnmt_residual_lstm"],
                    ("Google's Neural Machine Translation System: Bridging the Gap between Human and Machine "
                     "Translation", 2016, "1609.08144")),
    **dict.fromkeys(["InceptionResNetV2", "inception_resnet_v2"],
                    ("Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning", 2016,
                     "1602.07261")),
    **dict.fromkeys(["GPT2", "gpt2"], ("Language Models are Unsupervised Multitask Learners", 2019, None)),  # no arXiv
    **dict.fromkeys(["LoopGPT2", "loop_residual_gpt2"],
                    ("Loop-Residual Neural Networks for Iterative Refinement", 2024, "2409.14199")),
    **dict.fromkeys(["MobileNetV3", "mobilenet_v3_large", "mobilenet_v3_small"],
                    ("Searching for MobileNetV3", 2019, "1905.02244")),
    **dict.fromkeys(["AlexNet", "alexnet"],
                    ("One weird trick for parallelizing convolutional neural networks", 2014, "1404.5997")),
    **dict.fromkeys(["VGG", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"],
                    ("Very Deep Convolutional Networks for Large-Scale Image Recognition", 2014, "1409.1556")),
    **dict.fromkeys(["GoogLeNet", "googlenet"], ("Going Deeper with Convolutions", 2014, "1409.4842")),
    **dict.fromkeys(["Inception3", "inception_v3"],
                    ("Rethinking the Inception Architecture for Computer Vision", 2015, "1512.00567")),
    **dict.fromkeys(["SqueezeNet", "squeezenet1_0", "squeezenet1_1"],
                    ("SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size", 2016,
                     "1602.07360")),
    **dict.fromkeys(["MobileNetV2", "mobilenet_v2"],
                    ("MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018, "1801.04381")),
    **dict.fromkeys(["MNASNet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
                    ("MnasNet: Platform-Aware Neural Architecture Search for Mobile", 2018, "1807.11626")),
    **dict.fromkeys(["ShuffleNetV2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
                     "shufflenet_v2_x2_0"],
                    ("ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design", 2018, "1807.11164")),
    **dict.fromkeys([f"efficientnet_b{i}" for i in range(8)],
                    ("EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", 2019, "1905.11946")),
    **dict.fromkeys(["P3D", "p3d_a", "p3d_b", "p3d_c"],
                    ("Learning Spatio-Temporal Representation with Pseudo-3D Residual Networks", 2017, "1711.10305")),
    **dict.fromkeys(["R2UNet", "r2unet"],
                    ("Recurrent Residual Convolutional Neural Network based on U-Net (R2U-Net) for Medical Image "
                     "Segmentation", 2018, "1802.06955")),
    **dict.fromkeys(["RegNet", "regnet_x_400mf", "regnet_x_800mf"], ("Designing Network Design Spaces", 2020,
                                                                     "2003.13678")),
    **dict.fromkeys(["RepVGG", "repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0"],
                    ("RepVGG: Making VGG-style ConvNets Great Again", 2021, "2101.03697")),
    **dict.fromkeys(["res2net50_26w_4s", "res2net50_26w_6s", "res2net50_26w_8s", "res2net50_48w_2s",
                     "res2net50_14w_8s", "res2net101_26w_4s"],
                    ("Res2Net: A New Multi-scale Backbone Architecture", 2019, "1904.01169")),
    **dict.fromkeys(["ResidualAttentionNet", "residual_attention_56"],
                    ("Residual Attention Network for Image Classification", 2017, "1704.06904")),
    **dict.fromkeys(["ResMLP", "resmlp_12_224", "resmlp_24_224", "resmlp_36_224", "resmlp_big_24_224"],
                    ("ResMLP: Feedforward networks for image classification with data-efficient training", 2021,
                     "2105.03404")),
    **dict.fromkeys(["ResNetT", "resnet26t", "resnet50t"],
                    ("Bag of Tricks for Image Classification with Convolutional Neural Networks", 2018, "1812.01187")),
    **dict.fromkeys(["seresnet50", "seresnet101", "seresnet152", "seresnext50_32x4d"],
                    ("Squeeze-and-Excitation Networks", 2017, "1709.01507")),
    **dict.fromkeys(["skresnet18", "skresnet34"], ("Selective Kernel Networks", 2019, "1903.06586")),
    **dict.fromkeys(["MatchboxNet", "matchboxnet_3x1x64"],
                    ("MatchboxNet: 1D Time-Channel Separable Convolutional Neural Network Architecture for Speech "
                     "Commands Recognition", 2020, "2004.08531")),
    "marblenet_3x2x64": ("MarbleNet: Deep 1D Time-Channel Separable Convolutional Neural Network for Voice Activity "
                         "Detection", 2020, "2010.13886"),
    **dict.fromkeys(["KwsRes", "res8", "res15"],
                    ("Deep Residual Learning for Small-Footprint Keyword Spotting", 2017, "1710.10361")),
    **dict.fromkeys(["FixupNet", "fixup_resnet_cifar"],
                    ("Fixup Initialization: Residual Learning Without Normalization", 2019, "1901.09321")),
    **dict.fromkeys(["ResFormer", "resformer_tiny"],
                    ("Value Residual Learning For Alleviating Attention Concentration In Transformers", 2024,
                     "2410.17897")),    # reading list (a): the networks of the per-sample ops (resdsl/ir/ops/dynamic.py)
    **dict.fromkeys(["SkipNet", "skipnet38_cifar", "skipnet110_cifar"],
                    ("SkipNet: Learning Dynamic Routing in Convolutional Networks", 2017, "1711.09485")),
    **dict.fromkeys(["SoundStream", "soundstream_24khz"],
                    ("SoundStream: An End-to-End Neural Audio Codec", 2021, "2107.03312")),
    **dict.fromkeys(["ResFieldsMLP", "resfields_sdf"],
                    ("ResFields: Residual Neural Fields for Spatiotemporal Signals", 2023, "2309.03160")),
    **dict.fromkeys(["SMoRETransformer", "smore_tiny"],
                    ("S'MoRE: Structural Mixture of Residual Experts for LLM Fine-tuning", 2025, "2504.06426")),
    # end of reading list (a)
    **dict.fromkeys(["FDGATII", "fdgatii_tiny"],
                    ("FDGATII: Fast Dynamic Graph Attention with Initial Residual and Identity Mapping", 2021,
                     "2110.11464")),
    **dict.fromkeys(["CVMuSeNet", "cv_musenet_small"],
                    ("I Can't Believe It's Not Real: CV-MuSeNet: Complex-Valued Multi-Signal Segmentation", 2025,
                     "2506.11048")),
    **dict.fromkeys(["RKANResNet", "rkan_resnet_tiny"],
                    ("Residual Kolmogorov-Arnold Network for Enhanced Deep Learning", 2024, "2410.05500")),
    **dict.fromkeys(["PoincareResNet", "poincare_resnet_small"], ("Poincaré ResNet", 2023, "2303.14027")),
    # end of reading list (d)
    **dict.fromkeys(["RawWaveformCNN", "RawWaveformResNet", "m3", "m5", "m11", "m18", "m34_res"],
                    ("Very Deep Convolutional Neural Networks for Raw Waveforms", 2016, "1610.00087")),
    **dict.fromkeys(["DRLN", "drln_x2", "drln_x3", "drln_x4"],
                    ("Densely Residual Laplacian Super-Resolution", 2019, "1906.12021")),
    **dict.fromkeys(["R2L", "r2l"], ("R2L: Distilling Neural Radiance Field to Neural Light Field for Efficient Novel "
                                     "View Synthesis", 2022, "2203.17261")),
    **dict.fromkeys(["AutoInt", "autoint", "autoint_deepctr"],
                    ("AutoInt: Automatic Feature Interaction Learning via Self-Attentive Neural Networks", 2018,
                     "1810.11921")),
    **dict.fromkeys(["SRMNet", "srmnet"], ("Selective Residual M-Net for Real Image Denoising", 2022, "2203.01296")),
    **dict.fromkeys(["DeepResUNet", "deep_resunet"],
                    ("Decoupling Magnitude and Phase Estimation with Deep ResUNet for Music Source Separation", 2021,
                     "2109.05418")),
    # reading list (c): the networks of the time-step ops (resdsl/ir/ops/recurrent.py)
    **dict.fromkeys(["EMSResNet", "ems_resnet_tiny"],
                    ("Deep Directly-Trained Spiking Neural Networks for Object Detection", 2023, "2307.11411")),
    **dict.fromkeys(["GIRNet", "girnet_tiny"],
                    (("Global Spatial-Temporal Information-based Residual ConvLSTM for Video Space-Time "
                      "Super-Resolution"), 2024, "2407.08466")),
    **dict.fromkeys(["DeepResESN", "deep_residual_esn"],
                    (("Deep Residual Echo State Networks: exploring residual orthogonal connections in "
                      "untrained Recurrent Neural Networks"), 2025, "2508.21172")),
    **dict.fromkeys(["ResRMN", "residual_reservoir_memory_network"],
                    ("Residual Reservoir Memory Networks", 2025, "2508.09925")),
    # end of reading list (c)
    # reading list (misc): skeletons, mesh Jacobians, a video codec step, hierarchical residuals
    **dict.fromkeys(["EnsemNN", "ensem_nn_ntu"],
                    ("Ensemble One-dimensional Convolution Neural Networks for Skeleton-based Action Recognition",
                     2018, "1801.02475")),
    **dict.fromkeys(["TemporalResidualJacobians", "trj_small"],
                    ("Temporal Residual Jacobians For Rig-free Motion Transfer", 2024, "2407.14958")),
    **dict.fromkeys(["HyTIP", "hytip_small"],
                    ("HyTIP: Hybrid Temporal Information Propagation for Masked Conditional Residual Video Coding",
                     2025, "2508.02072")),
    **dict.fromkeys(["HiResNet", "hiresnet20_cifar"],
                    ("Hierarchical Residuals Exploit Brain-Inspired Compositionality", 2025, "2502.16003")),
    # end of reading list (misc)
    # reading list (graph): graph ODEs, reversible GNNs, BERT over CSI, selective state spaces
    **dict.fromkeys(["GRAMODE", "gram_ode_pems08"],
                    ("Graph-based Multi-ODE Neural Networks for Spatio-Temporal Traffic Forecasting", 2023,
                     "2305.18687")),
    **dict.fromkeys(["XGBoT", "xg_bot"],
                    ("XG-BoT: An Explainable Deep Graph Neural Network for Botnet Detection and Forensics", 2022,
                     "2207.09088")),
    **dict.fromkeys(["CSIBERT", "csi_bert"],
                    ("Finding the Missing Data: A BERT-inspired Approach Against Package Loss in Wireless Sensing",
                     2024, "2403.12400")),
    **dict.fromkeys(["ResVMamba", "res_vmamba_tiny", "res_vmamba_t"],
                    (("Res-VMamba: Fine-Grained Food Category Visual Classification Using Selective State Space "
                      "Models with Deep Residual Learning"), 2024, "2402.15761")),
    # end of reading list (graph)
    # reading list (image): ML-SIM, MixNet, EDNet, AutoLUT
    **dict.fromkeys(["MLSIM", "ml_sim"],
                    ("ML-SIM: A deep neural network for reconstruction of structured illumination microscopy images",
                     2020, "2003.11064")),
    **dict.fromkeys(["MixNet", "mixnet_v1", "mixnet_v2", "mixnet_v3"],
                    ("MixNet: Multi-modality Mix Network for Brain Segmentation", 2020, "2004.09832")),
    **dict.fromkeys(["EDNet", "ednet"],
                    (("EDNet: Efficient Disparity Estimation with Cost Volume Combination and Attention-based Spatial "
                      "Residual"), 2020, "2010.13338")),
    **dict.fromkeys(["AutoLUT", "autolut_mulut_x4"],
                    ("AutoLUT: LUT-Based Image Super-Resolution with Automatic Sampling and Adaptive Residual Learning",
                     2025, "2503.01565")),
    # end of reading list (image)
    # reading list (vit): convolutions and attention over images and sequences
    **dict.fromkeys(["MOAT", "moat_0", "tiny_moat_0"],
                    ("MOAT: Alternating Mobile Convolution and Attention Brings Strong Vision Models", 2022,
                     "2210.01820")),
    **dict.fromkeys(["ViTResNAS", "vit_resnas_tiny", "vit_res_tiny"],
                    ("Searching for Efficient Multi-Stage Vision Transformers", 2021, "2109.00642")),
    **dict.fromkeys(["HTRConvText", "htr_convtext"],
                    ("HTR-ConvText: Leveraging Convolution and Textual Information for Handwritten Text Recognition",
                     2025, "2512.05021")),
    **dict.fromkeys(["CSI4CAST", "csi_4cast_tdd", "csi_4cast_fdd"],
                    (("CSI-4CAST: A Hybrid Deep Learning Model for CSI Prediction with Comprehensive Robustness and "
                      "Generalization Testing"), 2025, "2510.12996")),
    # end of reading list (vit)
    # reading list (audio): speech and audio networks (tests/test_reading_list_audio.py)
    **dict.fromkeys(["SpeedySpeech", "speedyspeech"],
                    ("SpeedySpeech: Efficient Neural Speech Synthesis", 2020, "2008.03802")),
    **dict.fromkeys(["APNet", "apnet"],
                    (("APNet: An All-Frame-Level Neural Vocoder Incorporating Direct Prediction of Amplitude and "
                      "Phase Spectra"), 2023, "2305.07952")),
    **dict.fromkeys(["ReDimNet", "redimnet_m"],
                    ("Reshape Dimensions Network for Speaker Recognition", 2024, "2407.18223")),
    **dict.fromkeys(["AECMDCNN", "aec_mdcnn"],
                    (("End-to-End Complex-Valued Multidilated Convolutional Neural Network for Joint Acoustic Echo "
                      "Cancellation and Noise Suppression"), 2021, "2110.00745")),
    # end of reading list (audio)
    # reading list (seq): recurrent layers over residual features
    **dict.fromkeys(["RRNet", "rrnet_sp", "rrnet_ca"],
                    (("A Model RRNet for Spectral Information Exploitation and LAMOST Medium-resolution Spectrum "
                      "Parameter Estimation"), 2022, None)),
    **dict.fromkeys(["ResCTC", "res_ctc_digits"],
                    ("Handwritten digit string recognition by combination of residual network and RNN-CTC", 2017,
                     "1710.03112")),
    **dict.fromkeys(["DQN3DRNN", "dqn3d_rnn"],
                    (("3DCNN-DQN-RNN: A Deep Reinforcement Learning Framework for Semantic Parsing of Large-scale "
                      "3D Point Clouds"), 2017, "1707.06783")),
    **dict.fromkeys(["OneShotResLSTM", "oneshot_tox21"],
                    ("Low Data Drug Discovery with One-shot Learning", 2016, "1611.03199")),
    # end of reading list (seq)
}


def test_every_network_has_its_paper():
    assert set(PAPERS) == set(index())  # the table covers the stdlib, no more, no fewer
    for name, (title, year, arxiv) in PAPERS.items():
        assert paper(name) == {"title": title, "year": year, "arxiv": arxiv}, name
        assert arxiv is None or year == 2000 + int(arxiv[:2]), name  # the year of the preprint


def test_generic_networks_are_those_that_need_arguments():
    want = set()
    for f, _ in set(index().values()):
        for net, ref in Program.from_file(f).networks.items():
            defn = getattr(ref, "defn", None)
            if defn is not None and any(p.default is None for p in defn.params):
                want.add(net)
    assert generic() == want and {"ResNet", "ResNetT", "DenseNetBC"} <= want
    assert "ResNet" not in resdsl.list_models("resnet*") and "ResNetT" not in resdsl.list_models()
    assert resdsl.list_models("resnet*", generic=True) == ["ResNet", "ResNetT", "ResNetV2"]


def test_list_models_as_timm():
    names = resdsl.list_models()
    vit = resdsl.list_models(["*vit*"])
    assert vit == ["maxvit_t", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "vit_res_tiny",
                   "vit_resnas_tiny"]  # patterns, not one
    assert resdsl.list_models(["vit_b*", "dpn9*"]) == ["dpn92", "dpn98", "vit_b_16", "vit_b_32"]
    assert resdsl.list_models("resnet*", exclude=["*cifar", "*t"]) == \
        [n for n in names if n.startswith("resnet") and not n.endswith(("cifar", "t"))]
    pre = resdsl.list_models(pretrained=True)
    assert "resnet50.IMAGENET1K_V2" in pre and "res8" not in {p.split(".")[0] for p in pre}
    assert resdsl.list_models("vit_b_16", pretrained=True, include_tags=False) == ["vit_b_16"]
    with pytest.raises(resdsl.ResdslError):
        resdsl.list_models([1])


def cli(*args):
    return subprocess.run([sys.executable, "-m", "resdsl", *args], capture_output=True, text=True)


def test_cli_list_generic_and_papers():
    r = cli("list", "wide_resnet50_2")
    assert r.returncode == 0 and "Wide Residual Networks" in r.stdout and "1605.07146" in r.stdout
    r = cli("list", "--generic", "--names")
    assert r.returncode == 0 and r.stdout.split() == sorted(generic())
    r = cli("list", "--pretrained", "--names", "vit")
    assert r.stdout.split() == ["maxvit_t", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32"]


def test_cli_weights_and_pretrained_flag():
    r = cli("weights", "resnet50")
    assert r.returncode == 0
    row = next(line for line in r.stdout.splitlines() if line.startswith("IMAGENET1K_V2*"))
    assert row.split()[:6] == ["IMAGENET1K_V2*", "torchvision", "1000", "224", "80.858", "95.434"]
    assert "97.8 MB" in row and "bsd-3-clause" in row
    r = cli("weights", "vit_b_16.IMAGENET1K_SWAG_E2E_V1")
    assert r.returncode == 0 and "image=384" in r.stdout and "cc-by-nc-4.0" in r.stdout
    r = cli("weights", "res8")
    assert r.returncode == 1 and r.stderr.startswith("error[weights]: no published weights for `res8`")
    r = cli("compile", "resnet18", "-t", "onnx", "-o", "x.onnx", "--weights", "a.pt", "--pretrained")
    assert r.returncode == 2 and "not allowed with argument --weights" in r.stderr
    r = cli("compile", "resnet18", "-t", "torch", "-o", "x.py", "--pretrained")
    assert r.returncode == 2 and "--pretrained is for the onnx target" in r.stderr
