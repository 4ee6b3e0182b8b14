"""rvs_mi.sdf"""
