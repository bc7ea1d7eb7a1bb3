"""What a question asks for (a delay or date, an amount) against what the best entry gives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatbot.answer_type import (
    AMOUNT,
    COUNT,
    DURATION,
    EMAIL,
    FORMAT,
    FREQUENCY,
    HOURS,
    MOMENT,
    PHONE,
    SIZE,
    TIME,
    asked,
    offered,
)
from chatbot.retrieval import SCOPE_FEATURES
from tests.factories import make_entry
from tests.test_lexical import retriever


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("Dans quel délai l'ASP verse-t-elle l'avance ?", {TIME}),
        ("sous combien de temps est payé le solde", {DURATION}),
        ("Quand sort la V2 du référentiel ?", {MOMENT}),
        ("ok merci. Et quand pour le solde ?", {MOMENT}),
        # a deadline: a date is asked, not only a step of the procedure
        ("jusqu'à quand peut-on déposer ?", {TIME, MOMENT}),
        ("Y a-t-il une date butoir fixée par l'ARS ?", {TIME}),
        ("Is there a cut-off date for switching?", {TIME}),
        ("jusqu'à quelle année le programme court-il ?", {TIME}),
        ("Quelle est la date d'ouverture du guichet vague 2 ?", {TIME}),
        ("date de sortie de la V2 du référentiel ?", {TIME}),
        ("Quelle année de référence prendre pour le calcul ?", set()),  # which year, no deadline
        ("comment modifier la date de fin de dépôt de ma demande ?", set()),  # names a date
        ("le délai est de combien ?", {TIME}),  # no amount
        ("la version du référentiel est combien ?", set()),
        ("combien d'ESMS la CNSA finance-t-elle ?", {COUNT}),  # a count
        ("à combien s'élève l'enveloppe ?", {AMOUNT}),
        ("Combien une maison de santé reçoit-elle en euros ?", {AMOUNT}),
        ("combien la mesure touche-t-elle d'établissements ?", set()),  # a count, not money
        ("combien les MSP reçoivent-elles de patients ?", set()),
        ("Quels frais sont pris en charge par le programme ?", set()),  # which, not how much
        # whether a cost is covered, not how much (unless a share or the cost is asked)
        ("est-ce que le programme prend en charge ce que ça nous coûte ?", set()),
        ("les frais de formation sont-ils couverts ?", set()),
        ("Quel pourcentage du coût est pris en charge par la CNSA ?", {AMOUNT}),
        ("quel est le coût pris en charge ?", {AMOUNT}),
        ("combien coûte le module, est-il pris en charge ?", {AMOUNT}),
        ("Quel est le plafond de subvention par établissement ?", {AMOUNT}),
        ("l'aide est plafonnée à combien ?", {AMOUNT}),
        ("le pourcentage est-il publié ?", set()),
        ("what time frame applies?", set()),
        ("Is there a minimum waiting period before reapplying?", {DURATION}),
        ("asp verse l'argent combien de jours apres la demande ?", {DURATION}),
        ("ça prend combien de semaines ?", {DURATION}),
        ("Combien d'années dure un référencement ?", {DURATION}),  # the elision is gone
        ("Is there a wave 2 for LGO, and when does it open?", {MOMENT}),
        ("What is the deadline to apply?", {TIME}),
        ("combien coute la labellisation", {AMOUNT}),
        # « payant » asks whether it costs, not how much (« l'éditeur ne peut pas
        # facturer » answers it); « combien » or « frais » still ask an amount.
        ("Le référencement est-il payant ?", set()),
        ("combien coûte le module payant ?", {AMOUNT}),
        ("c'est payant ? des frais de dossier ?", {AMOUNT}),
        ("c'est payant à combien ?", {AMOUNT}),
        ("How much does the label cost?", {AMOUNT}),
        ("et le labo, il touche combien pour son SGL ?", {AMOUNT}),  # the colloquial order
        ("on est payé combien pour la presta ?", {AMOUNT}),
        ("C'est combien l'avance pour le DUI ?", {AMOUNT}),
        ("et la prestation, ça fait combien par site ?", {AMOUNT}),
        ("ça fait combien d'établissements en tout ?", {COUNT}),  # a count
        ("c'est combien de temps ?", {DURATION}),
        ("et l'enveloppe, elle est de combien ?", {AMOUNT}),
        ("Combien d'euros par professionnel ?", {AMOUNT}),
        ("Combien l'État verse-t-il à l'éditeur ?", {AMOUNT}),
        ("et ça représente combien d'argent par cabinet ?", {AMOUNT}),
        ("Sous combien de temps l'ASP verse-t-elle l'avance ?", {DURATION}),
        ("combien de dossiers l'ASP finance par an ?", {COUNT}),  # a count
        ("c'est quel pourcentage du forfait ?", {AMOUNT}),
        # whether, not how much: an entry answers it without a figure
        ("on peut avoir une enveloppe pour payer un chef de projet SI ?", set()),
        ("montant et date limite de l'avance SAS", {TIME, AMOUNT}),
        ("pièces pour le solde DUI", set()),
        # "quand" that does not ask when
        ("Quand on signe le BDC, faut-il un cachet ?", set()),
        ("on peut quand même signer le bdc ?", set()),
        # a condition: « quand » opening a clause on its subject, a question after the comma
        ("SGL : quand le labo produit un compte rendu, qui le diffuse ?", set()),
        ("Quand le client signe le BDC, doit-on prévenir l'ASP ?", set()),
        ("When the lab issues a report, who sends it?", set()),
        # (an inversion asks the moment all the same, hyphens typed or not, and so does a
        # clause followed by no question of its own)
        ("quand l'avance est-elle versée, et par qui ?", {MOMENT}),
        ("quand le solde est il versé, svp ?", {MOMENT}),
        ("Quand le paiement, svp ?", {MOMENT}),
        ("quand le versement du solde, s'il vous plaît ?", {MOMENT}),
        ("When we create a product on Convergence, what is the questionnaire for?", set()),
        ("Combien de PV faut-il faire valider ?", {COUNT}),
        ("la réforme touche combien d'établissements ?", {COUNT}),  # a count, not an amount
        ("le SAS touche combien de médecins ?", {COUNT}),
        ("l'avance est versée combien de fois ?", {COUNT}),
        # who pays, not how much
        ("La mise à jour Ségur, c'est à nos frais ?", set()),
        ("c'est aux frais de l'établissement ?", set()),
        ("à combien s'élèvent les frais ?", {AMOUNT}),
        ("le labo touche quelle somme pour la mise à jour de son SGL ?", {AMOUNT}),
        ("What amount does the vendor receive?", {AMOUNT}),
        ("What amount of time does the review take?", set()),  # not money
        ("en somme, le bon de commande suffit ?", set()),
        ("c'est à nos propres frais ?", set()),
        # …unless the clause asks a share all the same
        ("À combien l'ARS participe-t-elle aux frais de déploiement ?", {AMOUNT}),
        ("L'État contribue-t-il aux frais de raccordement, et combien ?", {AMOUNT}),
        ("Combien est remboursé aux frais réels ?", {AMOUNT}),
        ("Combien reste à nos frais ?", {AMOUNT}),
        # what a computation counts, not the sum it gives
        ("Pour le calcul du montant Ségur de notre MSP, les vacataires sont-ils comptés ?", set()),
        ("comment est fait le calcul du plafond ?", set()),
        ("quel montant pour le calcul ?", {AMOUNT}),
        # how often: a rhythm asked (not « en combien de fois », a number of instalments)
        ("Qui met à jour la fiche ROR, et à quelle fréquence ?", {FREQUENCY}),
        ("tous les combien faut-il renouveler le certificat ?", {FREQUENCY}),
        ("combien de fois par an faut-il le faire ?", {FREQUENCY}),
        ("tous les combien de mois faut-il le refaire ?", {FREQUENCY}),  # not a duration
        ("combien de fois par dispositif peut-on en bénéficier ?", {COUNT}),  # a count
        ("How often must the ROR be updated?", {FREQUENCY}),
        ("ça se paye en combien de fois ?", {COUNT}),
        # a way to reach someone: a number or an address
        ("quel est le numero de telephone de l'ASP ?", {PHONE}),
        ("c quoi le num de tel de l'assistance ASP ?", {PHONE}),
        ("plus moyen de me connecter, y a un numero a appeler ?", {PHONE}),
        ("is there a helpline number or an email address?", {PHONE, EMAIL}),
        ("quelle est l'adresse mail du support ?", {EMAIL}),
        ("ya une adresse mail pr poser ma question ?", {EMAIL}),
        # …not the phone the e-CPS application runs on, nor mail as a channel or received
        ("l'application e-CPS ne marche plus sur mon téléphone", set()),
        ("la lettre, on l'envoie par mail ou sur la plateforme ?", set()),
        ("j'ai reçu un mail de l'ASP, ma demande est incomplète", set()),
        ("à quelle adresse envoyer les pièces justificatives du solde SAS ?", set()),
        ("quelle adresse IP whitelister pour Convergence ?", set()),
        ("quel mail envoyer à l'ASP pour annuler ?", set()),
        ("la demande de paiement peut-elle se faire par téléphone ?", set()),
        ("quel numéro appeler pour le support Convergence ?", {PHONE}),
        ("quel est le numéro du support de l'ASP ?", {PHONE}),
        ("quel est le mail de l'ANS pour le référencement ?", {EMAIL}),
        ("et si on a toujours rien, on écrit à quelle adresse ?", {EMAIL}),
        ("à quelle adresse leur écrire ?", {EMAIL}),
        ("à quelle adresse envoyer le bon de commande papier ?", set()),
        ("c'est quoi le tel de la CNSA ?", {PHONE}),
        ("quel est le numéro FINESS à indiquer ?", set()),
        # when someone can be reached
        ("Horaires du service client e-CPS ? ouvert le samedi ?", {HOURS}),
        ("What are the opening hours of the support hotline?", {HOURS}),
        ("le 3608 est-il joignable le samedi ?", {HOURS}),
        ("et le 3608, il répond à quelles heures ?", {HOURS}),
        ("what time does the ASP helpdesk open?", {HOURS}),
        # the form of a file
        ("les preuves on les donne sous quel format, video ou captures ?", {FORMAT}),
        ("Dans quel format l'éditeur doit-il restituer mes données ?", {FORMAT}),
        ("le format de la facture Ségur est-il imposé ?", set()),  # whether, not which
        # how big a file may be
        ("taille maximale d'une vidéo de preuve ?", {SIZE}),
        ("taille max dun doc quon envoie au DMP cest cb en Mo", {SIZE}),
        ("la taille de la grappe compte-t-elle ?", set()),
    ],
)
def test_a_question_asks_for_a_delay_or_date_an_amount_or_neither(question, kinds):
    assert asked(question) == kinds


@pytest.mark.parametrize(
    ("question", "answer", "kinds"),
    [
        ("Quelles pièces fournir ?", "Le PV de VSR et la facture.", set()),
        ("Quel montant ?", "Un forfait de 30 000 € HT.", {AMOUNT}),
        ("Quel taux ?", "Financé à 100 % par l'État.", {AMOUNT}),
        ("Quel délai ?", "Le versement intervient sous 30 jours.", {TIME, DURATION, MOMENT}),
        # A date answers a delay or a deadline, not « how long » (DURATION).
        ("Calendrier ?", "Ouverture prévue en mars 2025.", {TIME, MOMENT}),
        # a title asking "quand" announces a moment, not a delay or a date
        ("Que comprend le solde et quand le demander ?", "Sur le PV.", {MOMENT}),
        # a delay or a date named without its value gives none
        ("Prérequis ?", "Anticipez pour tenir compte de ces délais.", set()),
        ("Changer ?", "Respectez la date de fin de dépôt des demandes.", set()),
        # a duration in words, « un/une » only where it is a count
        (
            "Compte ?",
            "Il y a un délai d'environ une semaine d'instruction.",
            {TIME, DURATION, MOMENT},
        ),
        ("Préparer ?", "Comptez quelques jours.", {TIME, DURATION, MOMENT}),
        ("Compter ?", "Prenez la moyenne sur une année.", set()),
        ("Délai ?", "Dans un délai d'un mois.", {TIME, DURATION, MOMENT}),
        ("Délai ?", "Réponse sous 48h.", {TIME, DURATION, MOMENT}),
        ("Délai ?", "Comptez trente jours.", {TIME, DURATION, MOMENT}),
        ("Durée ?", "Valable moins d'un an.", {TIME, DURATION, MOMENT}),
        # a year dates something after a day, a month or a preposition of time, not as
        # the name of a reference period
        ("Échéance ?", "Fin du dispositif en 2026.", {TIME, MOMENT}),
        ("Mise à jour ?", "Version du 26/07/2024.", {TIME, MOMENT}),
        ("Calcul ?", "Selon leur activité de l'année 2022.", set()),
        # "when" is also answered by the event waited for; a delay is not
        ("Versement ?", "L'avance est versée à l'issue de la mise en service.", {MOMENT}),
        # no deadline answers « jusqu'à quand ? » too
        ("Annuler ?", "Il est possible d'annuler à tout moment son BDC.", {TIME, MOMENT}),
        # how often: a rhythm, or each time something happens
        ("Mise à jour ?", "La fiche est mise à jour chaque année.", {FREQUENCY}),
        ("Mise à jour ?", "À chaque modification de l'offre.", {FREQUENCY}),
        ("Mise à jour ?", "Une extraction mensuelle est publiée.", {FREQUENCY}),
        ("Matrice ?", "Des droits attribués à chaque professionnel.", set()),  # « to each »
        # a number to call, an address to write to; not « contactez le support »
        ("Support ?", "Service client : 0 806 80 02 13.", {PHONE}),
        ("Label ?", "Contactez votre CIS au 3608.", {PHONE}),
        ("Question ?", "Écrivez à esms.numerique@cnsa.fr.", {EMAIL}),
        ("Annuler ?", "Contactez le support utilisateur de l'ASP.", set()),
        ("Support ?", "Ouvert du lundi au vendredi.", {HOURS}),
        ("Preuves ?", "Des captures d'écran ou une vidéo.", {FORMAT}),
        ("Données ?", "Demandez l'export à votre éditeur.", set()),
        ("Vidéo ?", "Une vidéo de 50 Mo au plus.", {SIZE, FORMAT}),
    ],
)
def test_an_entry_gives_an_amount_or_a_time_when_its_text_holds_one(question, answer, kinds):
    entry = replace(make_entry("ans-1", None, question=question), answer=answer)
    assert offered(entry) - {COUNT} == kinds  # (a number: the test below)


@pytest.mark.parametrize(
    ("answer", "gives"),
    [
        ("Une seule lettre par projet, c'est-à-dire pour une grappe.", True),
        ("L'avance est versée en une fois.", True),
        ("Il peut lui créer un de ces trois types de comptes.", True),
        ("Le nombre de comptes n'est pas limité.", True),
        ("Financé à 100 % par l'État.", True),
        ("La convention fixe les modalités de suivi.", False),
        ("Un délai d'environ une semaine d'instruction.", False),  # « une », an article
    ],
)
def test_only_a_number_answers_how_many(answer, gives):
    entry = replace(make_entry("ans-1", None, question="Combien ?"), answer=answer)
    assert (COUNT in offered(entry)) is gives


@pytest.mark.parametrize(
    ("question", "counts"),
    [
        ("combien de comptes peut-on créer sur Convergence ?", True),
        ("la subvention est versée en combien de fois ?", True),
        ("faut renvoyer la convention en combien d'exemplaires ?", True),
        ("cb de clients pilotes pour les PV ?", True),
        ("how many pilot sites do we need?", True),
        ("combien ça coûte ?", False),  # an amount
        ("combien de temps ?", False),  # a duration
        ("au bout de combien de tmeps ?", False),  # a duration, mistyped
        ("combien d'euros pour le DUI ?", False),
        ("combien de mots pour la description ?", True),  # no « mois » mistyped
        ("combien d'aide pour le DUI ?", False),  # an amount
        ("how many times a year must we renew?", False),  # a rhythm
        ("combien de fois par an faut-il le faire ?", False),  # a rhythm
    ],
)
def test_how_many_asks_a_number_unless_it_counts_time_or_money(question, counts):
    assert (COUNT in asked(question)) is counts


def test_a_question_asking_a_delay_the_best_entry_lacks_is_flagged_for_the_scope_model():
    feature = SCOPE_FEATURES.index("type_unanswered")
    r = retriever("Pièces pour l'avance SAS : le PV de mise en service et la facture.")
    assert r.scope_features(r.score("délai de versement de l'avance SAS ?"), "bm25")[feature] == 1
    assert r.scope_features(r.score("pièces pour l'avance SAS ?"), "bm25")[feature] == 0
    r = retriever("L'avance SAS est versée sous 30 jours, sur le PV de mise en service.")
    assert r.scope_features(r.score("délai de versement de l'avance SAS ?"), "bm25")[feature] == 0
    # "when" is answered by the event awaited, a delay is not
    r = retriever("L'avance SAS est versée à l'issue de la mise en service.")
    assert r.scope_features(r.score("quand est versée l'avance SAS ?"), "bm25")[feature] == 0
    assert r.scope_features(r.score("délai de versement de l'avance SAS ?"), "bm25")[feature] == 1


def test_every_kind_of_answer_has_its_words_for_the_user_and_the_curator():
    # A kind asked that the fallback could not name would fail the reply (KeyError).
    from chatbot import answer_type
    from chatbot import messages as msg

    kinds = set(answer_type._ASKS) | set(answer_type._GIVES)
    assert kinds == set(msg.ANSWER_KINDS) == set(msg.ASKED_KINDS)


def test_the_kinds_no_entry_gives_are_read_from_the_entries():
    from chatbot.answer_type import never_offered

    dated = make_entry("ans-1", None, question="Quand ?")
    dated = replace(dated, answer="Le solde est versé sous 30 jours, de 9h à 18h.")
    plain = replace(make_entry("ans-2", None, question="Quoi ?"), answer="Une attestation.")
    never = never_offered([offered(dated), offered(plain)])
    assert HOURS not in never and TIME not in never and SIZE in never and PHONE in never
    assert never_offered([]) >= {HOURS, SIZE, TIME, AMOUNT}
    # On the curated corpus: no entry gives opening hours or a file size; delays, amounts,
    # phone numbers and addresses are given by some (« horaires de la piscine » is foreign).
    from chatbot.corpus import load_corpus

    real = never_offered(offered(e) for e in load_corpus().entries)
    assert {HOURS, SIZE} <= real and not real & {TIME, AMOUNT, PHONE, EMAIL}
